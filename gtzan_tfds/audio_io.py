"""Decode an audio file to the stored format: mono float32 at 22,050 Hz (int16 via core.audio).

One decoder for the dataset builder, `pipeline.predict` and the page, so a song is turned into
samples the same way at training and at prediction time.  A local path is opened directly, any
other (`gs://...`: a manual dir in a bucket works for a Beam build on remote workers) through
`tf.io.gfile`; libsndfile (via soundfile) decodes: .au, .wav, .flac, .ogg, .mp3 and .aiff.
Stereo is downmixed by the mean of the channels and other rates are resampled with the
project's one resampler (`core.resample`, its streaming form `StreamResampler`).

The length is known before decoding (issue 20: a 1.9 MB FLAC holds 3 hours of audio, 3.8 GB
as float32 stereo).  `audio_info` reads the header only; `stream_audio` decodes in blocks of
`BLOCK_SECONDS`, each downmixed and resampled with the resampler's state carried from block to
block, so memory is one block whatever the length; `read_audio` joins the blocks (a whole song,
for the dataset builder).  `max_seconds` is refused from the header before any decoding
(`AudioTooLongError`, naming the file, its duration and the limit), and for formats whose
header states no reliable length (MP3, Ogg) decoding stops as soon as the limit is passed.

Why that resampler and not `scipy.signal.resample_poly` (which this module used before):
measured on the first 30 s of a 44.1 kHz recording, to 22.05 kHz, on 2 CPU cores (`python -m
pipeline.bench resample --audio FILE`, docs/dataset_build.md): core.resample 9.5-10.4 ms and
78.6 dB SNR against `librosa.resample` (soxr_hq); resample_poly 14.3-16.8 ms and 49.9 dB.  It is
faster and closer to librosa, and the pipeline uses it already.  Both are deterministic.

Bad input raises `core.errors.AudioDecodeError`, whose message names the file and the reason.
libsndfile is lenient where a dataset builder must not be, so two checks run before it:
- the first bytes must be the magic of the format the extension names (libsndfile reads a text
  file named `.au` as 8 kHz headerless audio, for instance);
- a .wav or .au whose header declares more audio than the file holds is *truncated*: libsndfile
  silently returns the part that is there.  By default that is an error (a truncated song in a
  dataset is corrupt data); `allow_truncated=True` returns the samples present with a warning,
  which is what a user predicting a half-downloaded file would rather have.

TensorFlow (for the resampler, and gfile for remote paths) is imported when a file is decoded,
not on import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import struct
from typing import Iterator, Optional, Union

import numpy as np
import soundfile as sf
from absl import logging

from core.audio import SAMPLE_RATE
from core.errors import AudioDecodeError, AudioTooLongError

PathLike = Union[str, "os.PathLike[str]"]

# Extension -> (format name for messages, accepted leading bytes).
_FORMATS = {
    ".au": ("Sun/NeXT AU", (b".snd", b"dns.")),
    ".snd": ("Sun/NeXT AU", (b".snd", b"dns.")),
    ".wav": ("WAV", (b"RIFF", b"RIFX", b"RF64")),
    ".wave": ("WAV", (b"RIFF", b"RIFX", b"RF64")),
    ".flac": ("FLAC", (b"fLaC", b"ID3")),
    ".ogg": ("Ogg", (b"OggS",)),
    ".oga": ("Ogg", (b"OggS",)),
    ".mp3": ("MP3", (b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xfa", b"\xff\xe3")),
    ".aif": ("AIFF", (b"FORM",)),
    ".aiff": ("AIFF", (b"FORM",)),
}
SUPPORTED_EXTENSIONS = tuple(sorted(_FORMATS))

_UNKNOWN_SIZE = (0, 0xFFFFFFFF)  # "size not known" markers of streamed WAV/AU headers
_HEAD_BYTES = 16  # read to check the magic
# Formats whose header states the number of frames (libsndfile reads it, decoding nothing).
# MP3 and Ogg do not: libsndfile estimates or scans, and a crafted file can make it wrong.
_LENGTH_IN_HEADER = ("Sun/NeXT AU", "WAV", "FLAC", "AIFF")
_NO_LENGTH = 2**62  # libsndfile's "unknown" frame counts are near SF_COUNT_MAX
BLOCK_SECONDS = 10.0  # decoded per block by stream_audio: 3.5 MB of 44.1 kHz stereo float32


def extension(path: PathLike) -> str:
    """'.../Song.WAV' -> '.wav' (lower case; '' without one)."""
    return os.path.splitext(os.fspath(path))[1].lower()


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, read before any sample is decoded (``audio_info``)."""

    path: str
    format_name: str  # "WAV", "FLAC", ... (from the extension, checked against the magic)
    samplerate: int
    channels: int
    frames: Optional[int]  # None: the header gives no reliable length (MP3, Ogg, or unknown)

    @property
    def seconds(self) -> Optional[float]:
        return None if self.frames is None else self.frames / self.samplerate


def audio_info(path: PathLike, *, allow_truncated: bool = False) -> AudioInfo:
    """The header of ``path``: rate, channels and, where the format states it, the length.

    Reads the first bytes and the header only (no decoding).  Raises AudioDecodeError for
    the problems ``read_audio`` names before decoding (extension, unreadable, empty, not
    audio, truncated, a header libsndfile cannot open).
    """
    path = os.fspath(path)
    with _open_checked(path, allow_truncated) as (f, format_name):
        with _soundfile(path, f, format_name) as sound:
            frames = sound.frames if format_name in _LENGTH_IN_HEADER else None
            if frames is not None and not 0 <= frames < _NO_LENGTH:
                frames = None  # e.g. a FLAC stream written without its total sample count
            return AudioInfo(path, format_name, sound.samplerate, sound.channels, frames)


def check_length(info: AudioInfo, max_seconds: Optional[float]) -> None:
    """AudioTooLongError when the header's length is over ``max_seconds`` (None: no limit)."""
    if max_seconds is not None and info.seconds is not None and info.seconds > max_seconds:
        raise AudioTooLongError.for_file(
            info.path, f"too long: {_duration(info.seconds)} of audio, the limit is "
            f"{_duration(max_seconds)}")


def stream_audio(
    path: PathLike, target_sr: int = SAMPLE_RATE, *, allow_truncated: bool = False,
    max_seconds: Optional[float] = None, block_seconds: float = BLOCK_SECONDS,
) -> Iterator[np.ndarray]:
    """Decodes ``path`` block by block: mono float32 blocks in [-1, 1] at ``target_sr`` Hz.

    Memory is one block (``block_seconds`` of the file's audio), whatever the file's length:
    each block is downmixed and resampled (``core.resample.StreamResampler``, its state carried
    from block to block: the same samples as resampling the whole file).  ``max_seconds``:
    refused from the header before any decoding when the header states the length
    (AudioTooLongError), and decoding stops as soon as more than that was decoded, for formats
    whose header states no reliable length (MP3, Ogg) or whose header lies.

    Raises:
      AudioDecodeError: as ``read_audio``; AudioTooLongError over ``max_seconds``.
    """
    path = os.fspath(path)
    with _open_checked(path, allow_truncated) as (f, format_name):
        with _soundfile(path, f, format_name) as sound:
            frames = sound.frames if format_name in _LENGTH_IN_HEADER else None
            if frames is not None and 0 <= frames < _NO_LENGTH:
                check_length(AudioInfo(path, format_name, sound.samplerate, sound.channels,
                                       frames), max_seconds)
            yield from _decode_blocks(path, sound, format_name, target_sr, max_seconds,
                                      max(1, int(block_seconds * sound.samplerate)))


def read_audio(
    path: PathLike, target_sr: int = SAMPLE_RATE, *, allow_truncated: bool = False,
    max_seconds: Optional[float] = None,
) -> np.ndarray:
    """Decodes `path` (local or remote) to a mono float32 array in [-1, 1] at `target_sr` Hz.

    The whole song in memory: for songs of a dataset, with ``max_seconds`` bounding it; a file
    of any length goes through ``stream_audio`` instead.

    Raises:
      AudioDecodeError: unknown extension, unreadable, empty, truncated (unless
        `allow_truncated`), not audio, undecodable, no samples, or a rate that cannot be
        resampled.  AudioTooLongError (a subclass): longer than ``max_seconds``.
    """
    blocks = list(stream_audio(path, target_sr, allow_truncated=allow_truncated,
                               max_seconds=max_seconds))
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


def _decode_blocks(path: str, sound, format_name: str, target_sr: int,
                   max_seconds: Optional[float], block_frames: int) -> Iterator[np.ndarray]:
    from core.resample import StreamResampler  # TensorFlow: only when a file is decoded

    sr = sound.samplerate
    limit = None if max_seconds is None else int(max_seconds * sr)
    try:
        resampler = StreamResampler(sr, target_sr)
    except ValueError as e:  # core.resample refuses rates with a huge reduced ratio
        raise AudioDecodeError.for_file(path, f"cannot resample {sr} Hz: {e}") from e
    decoded = 0
    while True:
        block = _read_block(path, sound, format_name, block_frames)
        if block is None:
            break
        decoded += len(block)
        if limit is not None and decoded > limit:
            raise AudioTooLongError.for_file(
                path, f"too long: more than {_duration(max_seconds)} of audio decoded (the "
                f"limit; {format_name} states no reliable length, so decoding stopped there)")
        if not np.isfinite(block).all():
            raise AudioDecodeError.for_file(path, "non-finite samples (NaN/inf)")
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        yield _clip(resampler.process(mono))
    if decoded == 0:
        raise AudioDecodeError.for_file(path, "no audio samples")
    yield _clip(resampler.flush())


def _read_block(path: str, sound, format_name: str, frames: int) -> Optional[np.ndarray]:
    try:
        block = sound.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        raise AudioDecodeError.for_file(path, f"undecodable {format_name}: {e}") from e
    return block if len(block) else None


def _clip(x: np.ndarray) -> np.ndarray:
    # PCM decodes into [-1, 1) already; float files and resampling overshoot can exceed it.
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)


def _duration(seconds: float) -> str:
    """10800.0 -> '3:00:00 (10800 s)'; 42.5 -> '42.5 s'."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    whole = int(seconds)
    h, rest = divmod(whole, 3600)
    text = f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
    return f"{text} ({seconds:.0f} s)"


@contextlib.contextmanager
def _open_checked(path: str, allow_truncated: bool):
    """(open binary file, format name), after the extension, magic and truncation checks."""
    ext = extension(path)
    if ext not in _FORMATS:
        raise AudioDecodeError.for_file(
            path,
            f"unknown extension {ext or '(none)'!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}",
        )
    with _open(path) as f:
        size = _size(f)
        if size == 0:
            raise AudioDecodeError.for_file(path, "empty file (0 bytes)")
        _check_header(path, ext, f, size, allow_truncated)
        f.seek(0)
        yield f, _FORMATS[ext][0]


@contextlib.contextmanager
def _open(path: str):
    """A local path with Python's open(); other file systems (gs://...) through tf.io.gfile."""
    if "://" not in path:
        try:
            f = open(path, "rb")  # noqa: SIM115  (closed below)
        except OSError as e:  # missing, a directory, no permission
            raise AudioDecodeError.for_file(path, f"cannot read file: {e.strerror}") from e
        with f:
            yield f
        return
    import tensorflow as tf  # start-up cost: only for a remote file

    try:
        f = tf.io.gfile.GFile(path, "rb")
        f.size()  # opening is lazy: NotFound etc. surface here
    except tf.errors.OpError as e:
        raise AudioDecodeError.for_file(path, f"cannot read file: {e.message}") from e
    with f:
        yield f


def _size(f) -> int:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    return size


@contextlib.contextmanager
def _soundfile(path: str, f, format_name: str):
    """libsndfile on the open file; its error names the file the user knows."""
    try:
        sound = sf.SoundFile(f)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        # libsndfile names what it read: the file object, not the file the user knows
        reason = str(e).replace(repr(f), os.path.basename(path))
        raise AudioDecodeError.for_file(path, f"undecodable {format_name}: {reason}") from e
    with sound:
        yield sound


def _check_header(path: str, ext: str, f, size: int, allow_truncated: bool) -> None:
    format_name, magics = _FORMATS[ext]
    head = f.read(_HEAD_BYTES)
    if not head.startswith(magics):
        raise AudioDecodeError.for_file(
            path,
            f"not {_article(format_name)} {format_name} file (starts with {head[:4]!r}; "
            "wrong extension or not audio)",
        )
    declared, available = _declared_and_available_bytes(ext, f, size)
    if declared is not None and available < declared:
        reason = (
            f"truncated: header declares {declared} bytes of audio, the file holds {available}"
        )
        if not allow_truncated:
            raise AudioDecodeError.for_file(path, reason)
        logging.warning("%s: %s; decoding the part present", path, reason)


def _article(format_name: str) -> str:
    return "an" if format_name[:1] in "AEIMO" else "a"  # an AIFF, an MP3, an Ogg; a WAV, a FLAC


def _declared_and_available_bytes(ext: str, f, size: int) -> tuple[Optional[int], int]:
    """(audio bytes the header declares or None when unknown, audio bytes in the file)."""
    f.seek(0)
    head = f.read(12)
    if ext in (".au", ".snd") and size >= 12:
        order = ">" if head.startswith(b".snd") else "<"
        offset, data_size = struct.unpack_from(order + "II", head, 4)
        if data_size in _UNKNOWN_SIZE or offset > size:
            return None, size
        return data_size, size - offset
    if ext in (".wav", ".wave") and head.startswith((b"RIFF", b"RIFX")):
        order = "<" if head.startswith(b"RIFF") else ">"
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack(order + "4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in _UNKNOWN_SIZE:
                    return None, size
                return chunk_size, size - pos - 8
            pos += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned
    return None, size
