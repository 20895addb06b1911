"""Prints the parity figures the README quotes, measured on the installed stack: every transform
against librosa (the windows of tests/test_transforms.py), the musicnn input against musicnn's
own librosa features and the Keras port against the original TF1 graphs (tests/test_musicnn.py).
The tests assert the tolerances; this prints what was reached.

    python tests/measure_parity.py      # from the repository root, with ../shared present
"""

import json
import sys

sys.path[:0] = ["tests", "."]
from pathlib import Path
import numpy as np
import soundfile as sf
import test_musicnn as M
import test_transforms as T

from core.config import TransformConfig
from pipeline.stream.transforms import make_transform, compiled_transform
from models import musicnn

d = Path("../shared/data/gtzan_sample")
out = {}
real = []
for clip in T.CLIPS:
    a, sr = sf.read(d / "genres" / clip, dtype="float32")
    real += [a[i * T.N:(i + 1) * T.N] for i in (0, 4, 9)]
real = np.stack(real)
for label, w in (("synthetic", T._synthetic_windows()), ("real", real)):
    for name, ref in (("stft", T._ref_stft_db), ("mel", T._ref_mel_db), ("mfcc", T._ref_mfcc), ("fft", T._ref_fft_db)):
        cfg = TransformConfig(name=name)
        ours = make_transform(cfg, T.SR)(w).numpy()
        out[f"{name}/{label}"] = T._max_diff(ours, ref, w, cfg)
# musicnn input
rows = []
for clip in M.CLIPS:
    a = M._clip_16k(d, clip)
    for s in (0, (len(a) - M.WINDOW) // 2, len(a) - M.WINDOW):
        rows.append(a[s:s + M.WINDOW])
wm = np.stack(rows)
refm = np.stack([M.librosa_musicnn_features(x) for x in wm])
for label, fn in (("graph", make_transform(TransformConfig(name="musicnn"), 16000)),
                  ("xla", compiled_transform(TransformConfig(name="musicnn"), 16000))):
    p = fn(wm).numpy()
    err = np.abs(p - refm)
    flipped = err > 1e-5
    out[f"musicnn_input/{label}"] = {"max": float(err.max()), "flipped_fraction": float(flipped.mean()),
                                     "max_unflipped": float(err[~flipped].max())}
patches = make_transform(TransformConfig(name="musicnn"), 16000)(wm).numpy()
for weights in musicnn.WEIGHTS + musicnn.VGG_WEIGHTS:
    expected = M.reference_outputs(weights, patches)
    got = M.ported(weights)(patches, training=False)
    out[f"port/{weights}"] = {k: float(np.abs(got[k].numpy() - expected[k]).max()) for k in expected}
print(json.dumps(out, indent=1))
