"""Writes the tiny fake downloads under dummy_data/ that tests/test_builder_tfds.py builds.

Run once from the repository root (`python gtzan_tfds/dummy_data/make_dummy_data.py`); the
files are committed. Each is a real file of its format, a few KB: 0.1-0.2 s of two tones.

    gtzan/genres/<genre>/<genre>.0000N.au|wav   a GTZAN download in the original layout:
        blues x3 (.au), classical x3 (.wav), jazz.00054.wav empty (the corrupt file of a
        popular copy: skipped and reported)
    folder/<label>/*                            your own music, 3 labels:
        brass: 3 x FLAC 44.1 kHz stereo; drums: 3 x Ogg 16 kHz mono;
        keys: 3 x MP3 48 kHz stereo, and broken.wav (random bytes: skipped and reported)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent


def _tones(seconds: float, sr: int, channels: int, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f = 220.0 * (1 + seed)
    left = 0.3 * np.sin(2 * np.pi * f * t) + 0.1 * np.sin(2 * np.pi * 3 * f * t)
    return np.stack([left, -0.5 * left], axis=1)[:, :channels] if channels > 1 else left


def _write(rel: str, seconds: float, sr: int, channels: int, seed: int, **kwargs) -> None:
    path = HERE / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _tones(seconds, sr, channels, seed), sr, **kwargs)


def main() -> None:
    for i in range(3):
        _write(f"gtzan/genres/blues/blues.{i:05d}.au", 0.1, 22_050, 1, i, subtype="PCM_16")
        _write(f"gtzan/genres/classical/classical.{i:05d}.wav", 0.1, 22_050, 1, i + 3,
               subtype="PCM_16")
        _write(f"folder/brass/fanfare_{i}.flac", 0.1, 44_100, 2, i, subtype="PCM_16")
        _write(f"folder/drums/groove_{i}.ogg", 0.2, 16_000, 1, i + 3, subtype="VORBIS")
        _write(f"folder/keys/chord_{i}.mp3", 0.2, 48_000, 2, i + 6, format="MP3")
    (HERE / "gtzan/genres/jazz").mkdir(parents=True, exist_ok=True)
    (HERE / "gtzan/genres/jazz/jazz.00054.wav").write_bytes(b"")
    (HERE / "folder/keys/broken.wav").write_bytes(np.random.default_rng(0).bytes(2000))


if __name__ == "__main__":
    main()
