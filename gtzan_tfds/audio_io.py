"""Decode an audio file to the stored format: mono float32 at 22,050 Hz (int16 via core.audio).

One decoder for the dataset builder and for `pipeline.predict`, so a song is turned into samples
the same way at training and at prediction time.  The file is read through `tf.io.gfile`, so a
path may be local or on any file system TensorFlow reaches (`gs://...`: a manual dir in a
bucket works for a Beam build on remote workers); libsndfile (via soundfile) decodes the bytes:
.au, .wav, .flac, .ogg, .mp3 and .aiff.  Stereo is downmixed by the mean of the channels and
other rates are resampled with the project's one resampler, `core.resample.resample`.

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

TensorFlow (for gfile and the resampler) is imported when a file is decoded, not on import.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Optional, Union

import numpy as np
import soundfile as sf
from absl import logging

from core.audio import SAMPLE_RATE
from core.errors import AudioDecodeError  # noqa: F401  (re-exported for the decoder's callers)

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


def extension(path: PathLike) -> str:
    """'.../Song.WAV' -> '.wav' (lower case; '' without one)."""
    return os.path.splitext(os.fspath(path))[1].lower()


def read_audio(
    path: PathLike, target_sr: int = SAMPLE_RATE, *, allow_truncated: bool = False
) -> np.ndarray:
    """Decodes `path` (local or remote) to a mono float32 array in [-1, 1] at `target_sr` Hz.

    Raises:
      AudioDecodeError: unknown extension, unreadable, empty, truncated (unless
        `allow_truncated`), not audio, undecodable, no samples, or a rate that cannot be
        resampled.
    """
    path = os.fspath(path)
    ext = extension(path)
    if ext not in _FORMATS:
        raise AudioDecodeError.for_file(
            path,
            f"unknown extension {ext or '(none)'!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}",
        )
    data = _read_bytes(path)
    _check_header(path, ext, data, allow_truncated)
    format_name = _FORMATS[ext][0]
    buffer = io.BytesIO(data)
    try:
        samples, sr = sf.read(buffer, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        # libsndfile names what it read: the in-memory copy, not the file the user knows
        reason = str(e).replace(repr(buffer), os.path.basename(path))
        raise AudioDecodeError.for_file(path, f"undecodable {format_name}: {reason}") from e
    if samples.shape[0] == 0:
        raise AudioDecodeError.for_file(path, "no audio samples")
    if not np.isfinite(samples).all():
        raise AudioDecodeError.for_file(path, "non-finite samples (NaN/inf)")

    mono = samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)
    if sr != target_sr:
        try:
            mono = _resample(mono, sr, target_sr)
        except ValueError as e:  # core.resample refuses rates with a huge reduced ratio
            raise AudioDecodeError.for_file(path, f"cannot resample {sr} Hz: {e}") from e
    # PCM decodes into [-1, 1) already; float files and resampling overshoot can exceed it.
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def _read_bytes(path: str) -> bytes:
    import tensorflow as tf  # start-up cost: only when a file is decoded

    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            data = f.read()
    except tf.errors.OpError as e:  # NotFound, PermissionDenied, a directory, ...
        raise AudioDecodeError.for_file(path, f"cannot read file: {e.message}") from e
    if not data:
        raise AudioDecodeError.for_file(path, "empty file (0 bytes)")
    return data


def _check_header(path: str, ext: str, data: bytes, allow_truncated: bool) -> None:
    format_name, magics = _FORMATS[ext]
    if not data.startswith(magics):
        raise AudioDecodeError.for_file(
            path,
            f"not {_article(format_name)} {format_name} file (starts with {data[:4]!r}; "
            "wrong extension or not audio)",
        )
    declared, available = _declared_and_available_bytes(ext, data)
    if declared is not None and available < declared:
        reason = (
            f"truncated: header declares {declared} bytes of audio, the file holds {available}"
        )
        if not allow_truncated:
            raise AudioDecodeError.for_file(path, reason)
        logging.warning("%s: %s; decoding the part present", path, reason)


def _article(format_name: str) -> str:
    return "an" if format_name[:1] in "AEIMO" else "a"  # an AIFF, an MP3, an Ogg; a WAV, a FLAC


def _resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    import tensorflow as tf  # start-up cost: only when a file needs resampling

    from core.resample import resample

    return resample(tf.constant(x, dtype=tf.float32), orig_sr, target_sr).numpy()


def _declared_and_available_bytes(ext: str, data: bytes) -> tuple[Optional[int], int]:
    """(audio bytes the header declares or None when unknown, audio bytes in the file)."""
    size = len(data)
    if ext in (".au", ".snd") and size >= 12:
        order = ">" if data.startswith(b".snd") else "<"
        offset, data_size = struct.unpack_from(order + "II", data, 4)
        if data_size in _UNKNOWN_SIZE or offset > size:
            return None, size
        return data_size, size - offset
    if ext in (".wav", ".wave") and data.startswith((b"RIFF", b"RIFX")):
        order = "<" if data.startswith(b"RIFF") else ">"
        pos = 12
        while pos + 8 <= size:
            chunk_id, chunk_size = struct.unpack_from(order + "4sI", data, pos)
            if chunk_id == b"data":
                if chunk_size in _UNKNOWN_SIZE:
                    return None, size
                return chunk_size, size - pos - 8
            pos += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned
    return None, size
