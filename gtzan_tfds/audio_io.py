"""Decode an audio file to GTZAN's format: mono float32 at 22,050 Hz, or int16 for storage.

One decoder for the dataset builder and for `pipeline.predict`, so a song is turned into samples
the same way at training and at prediction time.  libsndfile (via soundfile) reads .au, .wav,
.flac, .ogg, .mp3 and .aiff; stereo is downmixed by the mean of the channels and other rates are
resampled with a polyphase filter (`scipy.signal.resample_poly`), which is deterministic.

Bad input raises `AudioDecodeError` whose message names the file and the reason.  libsndfile is
lenient where a dataset builder must not be, so two checks run before it:
- the first bytes must be the magic of the format the extension names (libsndfile reads a text
  file named `.au` as 8 kHz headerless audio, for instance);
- a .wav or .au whose header declares more audio than the file holds is *truncated*: libsndfile
  silently returns the part that is there.  By default that is an error (a truncated song in a
  dataset is corrupt data); `allow_truncated=True` returns the samples present with a warning,
  which is what a user predicting a half-downloaded file would rather have.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Optional, Union

import numpy as np
import soundfile as sf
from absl import logging
from scipy import signal

from core.errors import AudioDecodeError
from gtzan_tfds.constants import SAMPLE_RATE

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

_INT16_SCALE = 32768.0  # soundfile's int16 <-> float convention: float = int / 32768
_UNKNOWN_SIZE = (0, 0xFFFFFFFF)  # "size not known" markers of streamed WAV/AU headers


def read_audio(
    path: PathLike, target_sr: int = SAMPLE_RATE, *, allow_truncated: bool = False
) -> np.ndarray:
    """Decodes `path` to a mono float32 array in [-1, 1] at `target_sr` Hz.

    Raises:
      AudioDecodeError: unknown extension, missing, empty, truncated (unless `allow_truncated`),
        not audio, undecodable, or no samples.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in _FORMATS:
        raise AudioDecodeError.for_file(
            path,
            f"unknown extension {ext or '(none)'!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}",
        )
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise AudioDecodeError.for_file(path, f"cannot read file: {e.strerror or e}") from e
    if size == 0:
        raise AudioDecodeError.for_file(path, "empty file (0 bytes)")
    format_name, magics = _FORMATS[ext]
    if not head.startswith(magics):
        raise AudioDecodeError.for_file(
            path,
            f"not {_article(format_name)} {format_name} file (starts with {head[:4]!r}; "
            "wrong extension or not audio)",
        )

    declared, available = _declared_and_available_bytes(path, ext, head, size)
    if declared is not None and available < declared:
        reason = (
            f"truncated: header declares {declared} bytes of audio, the file holds {available}"
        )
        if not allow_truncated:
            raise AudioDecodeError.for_file(path, reason)
        logging.warning("%s: %s; decoding the part present", path, reason)

    try:
        data, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises LibsndfileError/RuntimeError/ValueError/...
        raise AudioDecodeError.for_file(path, f"undecodable {format_name}: {e}") from e
    if data.shape[0] == 0:
        raise AudioDecodeError.for_file(path, "no audio samples")
    if not np.isfinite(data).all():
        raise AudioDecodeError.for_file(path, "non-finite samples (NaN/inf)")

    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    if sr != target_sr:
        mono = resample(mono, sr, target_sr)
    # PCM decodes into [-1, 1) already; float files and resampling overshoot can exceed it.
    return np.clip(mono, -1.0, 1.0).astype(np.float32, copy=False)


def _article(format_name: str) -> str:
    return "an" if format_name[:1] in "AEIMO" else "a"  # an AIFF, an MP3, an Ogg; a WAV, a FLAC


def resample(x: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling by the exact rational factor target_sr / orig_sr (deterministic)."""
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if orig_sr == target_sr:
        return np.asarray(x, dtype=np.float32)
    g = math.gcd(orig_sr, target_sr)
    return signal.resample_poly(x, target_sr // g, orig_sr // g).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> int16 (x * 32768, rounded, clipped): exact for PCM16 input."""
    x = np.asarray(x)
    if x.dtype == np.int16:
        return x
    return np.clip(np.rint(x * _INT16_SCALE), -32768, 32767).astype(np.int16)


def _declared_and_available_bytes(
    path: str, ext: str, head: bytes, size: int
) -> tuple[Optional[int], int]:
    """(audio bytes the header declares or None when unknown, audio bytes in the file)."""
    if ext in (".au", ".snd") and len(head) >= 12:
        order = ">" if head.startswith(b".snd") else "<"
        offset, data_size = struct.unpack(order + "II", head[4:12])
        if data_size in _UNKNOWN_SIZE or offset > size:
            return None, size
        return data_size, size - offset
    if ext in (".wav", ".wave") and head.startswith((b"RIFF", b"RIFX")):
        order = "<" if head.startswith(b"RIFF") else ">"
        with open(path, "rb") as f:
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
