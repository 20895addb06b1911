"""Window -> features, with TensorFlow ops only (tf.signal), so CPU and GPU run the same code.

Every transform maps a float32 batch of windows ``[B, N]`` to features ``[B, ...]``:

=========  ==========================  ===================================================
name       shape per window            what (librosa equivalent, per window)
=========  ==========================  ===================================================
raw        ``[N]``                     the samples themselves
fft        ``[N // 2 + 1]``            ``power_to_db(abs(np.fft.rfft(w)) ** 2)``: dB of the
                                       power spectrum of the whole window, no taper window
stft       ``[frames, n_fft//2 + 1]``  ``amplitude_to_db(abs(stft(w)))``: dB spectrogram
mel        ``[frames, n_mels]``        ``power_to_db(melspectrogram(y=w))``: log-mel, dB
mfcc       ``[frames, n_mfcc]``        ``feature.mfcc(S=<that log-mel>)``: DCT-II, ortho
musicnn    ``[187, 96]``               the pretrained musicnn networks' input (see below)
=========  ==========================  ===================================================

Time is the first feature axis (librosa puts it last): ``[frames, bins]`` is what a Conv2D
(after adding a channel axis) or a recurrent layer expects.  ``frames = 1 + N // hop_length``
with ``center=True``: each window is padded by ``n_fft // 2`` on both sides, with zeros
(``pad_mode="constant"``, the default of librosa 0.10 and later) or by reflection.  The STFT
uses a periodic Hann window of ``win_length`` centred in ``n_fft``, as librosa does.

All dB values are ``10 * log10(max(amin, power))`` (``ref=1``), then clipped to ``top_db``
below the maximum *of each window* (librosa.power_to_db applied to one window at a time, as
the seed study did).  A silent window therefore gives ``10 * log10(amin)`` everywhere
(-100 dB by default): finite.  The mel filterbank is librosa's own (Slaney scale and area
normalisation), computed once when the graph is traced and stored as a constant.

``musicnn`` reproduces musicnn's own preprocessing (librosa 0.7, ``core/musicnn_input.py``)
on 16 kHz windows, whatever the other TransformConfig fields say:
``log10(10000 * float16(melspectrogram(y=w, sr=16000, n_fft=512, hop_length=256, n_mels=96,
pad_mode="reflect")) + 1)``, i.e. a power Slaney mel spectrogram rounded to float16 (as musicnn
does before its log) and log-compressed, then the first 187 frames of the window.  A window of
at least 47,616 samples has 187 frames or more; the 3 s default (48,000) has 188.

``make_transform`` returns a plain function (traced into the tf.data graph or the model);
``TransformLayer`` wraps it as a Keras layer that a saved ``.keras`` model carries.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from core import musicnn_input
from core.audio import SAMPLE_RATE
from core.config import PipelineConfig, TransformConfig
from pipeline.stream.windowing import audio_to_float

_LOG10_SCALE = 10.0 / math.log(10.0)  # 10 * log10(x) == _LOG10_SCALE * ln(x)


# --------------------------------------------------------------------------------------------
# shapes
def num_frames(window_length: int, cfg: TransformConfig) -> int:
    """STFT frames in a window of ``window_length`` samples (librosa's count)."""
    if cfg.center:
        padded = window_length + 2 * (cfg.n_fft // 2)
    else:
        padded = window_length
    return max(0, 1 + (padded - cfg.n_fft) // cfg.hop_length)


def feature_shape_for(transform_cfg: TransformConfig, window_length: int) -> tuple[int, ...]:
    """Shape of one window's features (no batch axis)."""
    name = transform_cfg.name
    if name == "raw":
        return (window_length,)
    if name == "fft":
        return (window_length // 2 + 1,)
    if name == "musicnn":
        frames = num_frames(window_length, MUSICNN_STFT)
        return (min(frames, musicnn_input.PATCH_FRAMES), musicnn_input.N_MELS)
    frames = num_frames(window_length, transform_cfg)
    if name == "stft":
        return (frames, transform_cfg.n_fft // 2 + 1)
    if name == "mel":
        return (frames, transform_cfg.n_mels)
    if name == "mfcc":
        return (frames, transform_cfg.n_mfcc)
    raise ValueError(f"unknown transform {name!r}")


def feature_shape(cfg: PipelineConfig) -> tuple[int, ...]:
    """Shape of one window's features (no batch axis) for a whole pipeline config.

    With ``transform_placement == "model"`` the dataset yields raw windows of shape
    ``(window_length,)`` and the model's ``TransformLayer`` outputs this shape.
    """
    return feature_shape_for(cfg.transform, cfg.window.window_length)


def model_input_shape(cfg: PipelineConfig) -> tuple[int, ...]:
    """What a model's Input sees: the features, or raw windows when the model transforms."""
    if cfg.transform_placement == "model":
        return (cfg.window.window_length,)
    return feature_shape(cfg)


# --------------------------------------------------------------------------------------------
# building blocks
def power_to_db(power: tf.Tensor, amin: float, top_db: Optional[float]) -> tf.Tensor:
    """librosa.power_to_db(power, ref=1.0, amin, top_db), with the maximum taken per window.

    ``power`` is ``[B, ...]``; the ``top_db`` floor is relative to each batch row's maximum.
    """
    db = _LOG10_SCALE * tf.math.log(tf.maximum(power, tf.cast(amin, power.dtype)))
    if top_db is not None:
        axes = list(range(1, power.shape.rank))
        peak = tf.reduce_max(db, axis=axes, keepdims=True)
        db = tf.maximum(db, peak - tf.cast(top_db, db.dtype))
    return db


def _stft_window(cfg: TransformConfig) -> np.ndarray:
    """Periodic Hann of win_length, zero-padded to n_fft with the window centred (librosa)."""
    win_length = cfg.win_length or cfg.n_fft
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)  # scipy hann(..., sym=False)
    left = (cfg.n_fft - win_length) // 2
    return np.pad(window, (left, cfg.n_fft - win_length - left)).astype(np.float32)


def _padded_for_frames(windows: tf.Tensor, cfg: TransformConfig, frames: int, groups: int):
    """The windows padded as librosa pads them (``center``), plus zeros at the end so that
    ``groups`` phase groups of ``ceil(frames / groups)`` frames each fit."""
    if cfg.center:
        pad = cfg.n_fft // 2
        mode = "REFLECT" if cfg.pad_mode == "reflect" else "CONSTANT"
        windows = tf.pad(windows, [[0, 0], [pad, pad]], mode=mode)
    per_group = -(-frames // groups)
    needed = (groups - 1) * cfg.hop_length + per_group * cfg.n_fft
    extra = max(0, needed - int(windows.shape[-1]))
    return tf.pad(windows, [[0, 0], [0, extra]]) if extra else windows


def frame_groups(windows: tf.Tensor, cfg: TransformConfig) -> tf.Tensor:
    """Hann-windowed STFT frames in phase groups: ``[B, R, M, n_fft]``.

    With ``R = n_fft / hop_length`` (an integer, as with every default), frames ``r, r + R,
    r + 2R, ...`` do not overlap: group ``r`` is one contiguous slice of the padded window
    reshaped to ``[M, n_fft]``, a plain copy that XLA vectorises, where ``tf.signal.frame``
    (a gather) costs twice as much on CPU.  Frame ``j`` is group ``j % R``, row ``j // R``
    (``frames_in_order`` restores the order); the last group may hold up to ``R - 1`` frames
    past the end, which ``frames_in_order`` drops.  Other hops fall back to
    ``tf.signal.frame`` (``R = 1``).  Needs a static window length.
    """
    length = windows.shape[-1]
    frames = num_frames(int(length), cfg) if length is not None else None
    taper = tf.constant(_stft_window(cfg))
    if frames is None or frames < 1 or cfg.n_fft % cfg.hop_length:
        if cfg.center:
            pad = cfg.n_fft // 2
            mode = "REFLECT" if cfg.pad_mode == "reflect" else "CONSTANT"
            windows = tf.pad(windows, [[0, 0], [pad, pad]], mode=mode)
        return tf.signal.frame(windows, cfg.n_fft, cfg.hop_length)[:, None] * taper
    groups = cfg.n_fft // cfg.hop_length
    per_group = -(-frames // groups)
    padded = _padded_for_frames(windows, cfg, frames, groups)
    parts = [
        tf.reshape(padded[:, r * cfg.hop_length : r * cfg.hop_length + per_group * cfg.n_fft],
                   [-1, per_group, cfg.n_fft])
        for r in range(groups)
    ]
    return tf.stack(parts, axis=1) * taper


def frames_in_order(grouped: tf.Tensor, frames: int) -> tf.Tensor:
    """``[B, R, M, K]`` per-frame values in phase groups -> ``[B, frames, K]`` in time order."""
    groups, per_group, k = grouped.shape[1], grouped.shape[2], grouped.shape[3]
    ordered = tf.reshape(tf.transpose(grouped, [0, 2, 1, 3]), [-1, groups * per_group, k])
    return ordered[:, :frames]


def grouped_power(windows: tf.Tensor, cfg: TransformConfig) -> tf.Tensor:
    """|STFT|^2 in phase groups (``frame_groups``): ``[B, R, M, n_fft // 2 + 1]``."""
    spectrum = tf.signal.rfft(frame_groups(windows, cfg))
    # |z|^2 without the sqrt-then-square of tf.abs
    return tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))


def power_spectrogram(windows: tf.Tensor, cfg: TransformConfig) -> tf.Tensor:
    """|STFT|^2 of a batch of windows: [B, N] -> [B, frames, n_fft // 2 + 1]."""
    return _in_order(grouped_power(windows, cfg), windows, cfg)


def _in_order(grouped: tf.Tensor, windows: tf.Tensor, cfg: TransformConfig) -> tf.Tensor:
    if windows.shape[-1] is None:  # frame_groups fell back to one group
        return grouped[:, 0]
    return frames_in_order(grouped, num_frames(int(windows.shape[-1]), cfg))


def _band_blocks(weights: np.ndarray, bands_per_block: int = 16) -> list[tuple[int, int, int, int]]:
    """(first bin, end bin, first band, end band) of blocks of mel bands: each block only
    needs the bins where one of its triangles is non-zero (most of a mel filterbank is 0)."""
    blocks = []
    for first in range(0, weights.shape[1], bands_per_block):
        end = min(first + bands_per_block, weights.shape[1])
        used = np.flatnonzero(np.any(weights[:, first:end] != 0, axis=1))
        lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 1)
        blocks.append((lo, hi, first, end))
    return blocks


def mel_projection(power: tf.Tensor, weights: np.ndarray) -> tf.Tensor:
    """``power [..., bins] @ weights [bins, bands]``, block by block over the bands.

    The same sums as the dense product (every skipped weight is exactly zero), with ~8x
    fewer multiply-adds for a 128-band Slaney filterbank on 1025 bins: 17 k instead of 131 k
    per frame (measured 0.27 -> 0.07 ms per 3 s window on the 2-core CPU; docs/performance.md).
    """
    return tf.concat(
        [tf.linalg.matmul(power[..., lo:hi], tf.constant(weights[lo:hi, first:end]))
         for lo, hi, first, end in _band_blocks(weights)],
        axis=-1,
    )


def mel_filterbank(cfg: TransformConfig, sample_rate: int) -> np.ndarray:
    """librosa.filters.mel (Slaney) as a [n_fft // 2 + 1, n_mels] float32 matrix."""
    import librosa  # only when a mel graph is built; numpy result becomes a graph constant

    weights = librosa.filters.mel(
        sr=sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        htk=False,
        norm="slaney",
    )
    return np.ascontiguousarray(weights.T, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# musicnn's input
# musicnn's STFT and mel settings as a TransformConfig, for power_spectrogram/mel_filterbank
MUSICNN_STFT = TransformConfig(
    name="mel",
    n_fft=musicnn_input.N_FFT,
    hop_length=musicnn_input.HOP_LENGTH,
    n_mels=musicnn_input.N_MELS,
    center=True,
    pad_mode=musicnn_input.PAD_MODE,
)


def round_to_float16(x: tf.Tensor) -> tf.Tensor:
    """float32 ``x`` rounded to the nearest float16 value (ties to even), kept in float32.

    Why not ``tf.cast`` to float16 and back: XLA may drop that round trip as excess precision
    (TF 2.17's did; history in docs/musicnn.md), and tf.data runs this transform compiled.
    Arithmetic cannot be dropped: ``|x|`` is rounded to a multiple of its float16 spacing (a
    power of two built from its exponent bits), subnormals to multiples of 2**-24, and 65520
    and up overflow to inf, as NumPy's ``astype(np.float16)`` does.  TFLite built-in ops only.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    magnitude = tf.abs(x)
    exponent_bits = tf.math.floordiv(tf.bitcast(magnitude, tf.int32), 2**23)  # biased exponent
    ulp = tf.bitcast(tf.maximum(exponent_bits - 10, 1) * 2**23, tf.float32)  # 2**(e - 10)
    normal = tf.round(magnitude / ulp) * ulp
    subnormal = tf.round(magnitude * 2.0**24) * 2.0**-24
    rounded = tf.where(magnitude < 2.0**-14, subnormal, normal)
    rounded = tf.where(magnitude >= 65520.0, tf.constant(math.inf), rounded)
    return tf.where(tf.math.is_nan(x), x, tf.where(x < 0, -rounded, rounded))


def musicnn_transform() -> Callable[[tf.Tensor], tf.Tensor]:
    """16 kHz windows [B, N] -> musicnn log-mel patches [B, min(187, 1 + N // 256), 96].

    The mel power is rounded to float16 and back before the log, as musicnn's extractor does
    (``astype(np.float16)``; its log then runs in float32), with ``round_to_float16`` so that
    the XLA-compiled transform rounds too.
    """
    weights = mel_filterbank(MUSICNN_STFT, musicnn_input.SAMPLE_RATE)
    inv_ln10 = 1.0 / math.log(10.0)

    def musicnn_log_mel(windows: tf.Tensor) -> tf.Tensor:
        power = power_spectrogram(audio_to_float(windows), MUSICNN_STFT)
        power = power[:, : musicnn_input.PATCH_FRAMES]
        mel = tf.linalg.matmul(power, tf.constant(weights))
        mel = round_to_float16(mel)
        return tf.math.log(musicnn_input.LOG_SCALE * mel + 1.0) * inv_ln10

    return musicnn_log_mel


# --------------------------------------------------------------------------------------------
# the transform
def log_mel_transform(cfg: TransformConfig, sample_rate: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """Windows [B, N] (int16 or float) -> log-mel dB [B, frames, n_mels] (the "mel" transform).

    The mel projection runs on the phase-grouped power (``grouped_power``) and only the small
    result is put back in time order.
    """
    weights = mel_filterbank(cfg, sample_rate)  # numpy, built once per graph construction

    def log_mel(windows: tf.Tensor) -> tf.Tensor:
        windows = audio_to_float(windows)
        mel = _in_order(mel_projection(grouped_power(windows, cfg), weights), windows, cfg)
        return power_to_db(mel, cfg.amin, cfg.top_db)

    return log_mel


def dct_matrix(n_mels: int, n_mfcc: int) -> np.ndarray:
    """The first ``n_mfcc`` orthonormal DCT-II basis vectors as a [n_mels, n_mfcc] matrix:
    ``log_mel @ it`` is ``scipy.fft.dct(log_mel, type=2, norm="ortho")[..., :n_mfcc]``."""
    n = np.arange(n_mels)[:, None]
    k = np.arange(n_mfcc)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[:, 0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def mfcc_from_log_mel(log_mel: tf.Tensor, cfg: TransformConfig) -> tf.Tensor:
    """librosa.feature.mfcc on a dB log-mel: DCT-II with norm="ortho" over the mel axis, as a
    product with the ``n_mfcc`` basis vectors kept (``tf.signal.dct`` computes all ``n_mels``
    through a 2 * n_mels FFT and cost 15 % of the whole MFCC transform)."""
    return tf.linalg.matmul(log_mel, tf.constant(dct_matrix(cfg.n_mels, cfg.n_mfcc)))


def make_transform(
    transform_cfg: TransformConfig, sample_rate: int = SAMPLE_RATE
) -> Callable[[tf.Tensor], tf.Tensor]:
    """A function from a batch of windows [B, N] (float32, or int16 PCM) to features [B, ...].

    Plain TensorFlow ops (no Python control flow on values): trace it into a tf.data map,
    a model (``TransformLayer``), or ``tf.function(jit_compile=True)`` for XLA.
    """
    cfg = transform_cfg
    cfg.validate(sample_rate)
    name = cfg.name

    if name == "raw":
        return audio_to_float

    if name == "fft":

        def fft(windows: tf.Tensor) -> tf.Tensor:
            spectrum = tf.signal.rfft(audio_to_float(windows))
            power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
            return power_to_db(power, cfg.amin, cfg.top_db)

        return fft

    if name == "stft":

        def stft(windows: tf.Tensor) -> tf.Tensor:
            power = power_spectrogram(audio_to_float(windows), cfg)
            return power_to_db(power, cfg.amin, cfg.top_db)

        return stft

    if name == "musicnn":
        return musicnn_transform()

    log_mel = log_mel_transform(cfg, sample_rate)
    if name == "mel":
        return log_mel

    if name == "mfcc":

        def mfcc(windows: tf.Tensor) -> tf.Tensor:
            return mfcc_from_log_mel(log_mel(windows), cfg)

        return mfcc

    raise ValueError(f"unknown transform {name!r}")


def compiled_transform(
    transform_cfg: TransformConfig, sample_rate: int = SAMPLE_RATE
) -> Callable[[tf.Tensor], tf.Tensor]:
    """``make_transform`` under ``tf.function(jit_compile=True)`` (XLA), for batches.

    One compilation per distinct batch shape (the last, smaller batch of an epoch adds one).
    """
    return tf.function(make_transform(transform_cfg, sample_rate), jit_compile=True)


# --------------------------------------------------------------------------------------------
# the same transform as a Keras layer (transform_placement == "model")
@keras.saving.register_keras_serializable(package="gtzan_stream")
class TransformLayer(keras.layers.Layer):
    """The pipeline's transform as a model's first layer: raw windows [B, N] in, features out.

    Used when ``PipelineConfig.transform_placement == "model"``: the dataset then yields raw
    float32 windows and this layer (on the GPU when there is one) computes exactly the
    features ``make_dataset`` would have computed in tf.data.  It has no weights;
    ``get_config()`` stores the TransformConfig, so a saved ``.keras`` model carries it.
    """

    def __init__(
        self,
        transform: Union[TransformConfig, dict[str, Any], None] = None,
        sample_rate: int = SAMPLE_RATE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trainable", False)
        # float32 whatever the global policy: an FFT in float16 (mixed precision) loses the
        # quiet bins that the dB scale is there to show
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if transform is None:
            transform = TransformConfig()
        elif isinstance(transform, dict):
            transform = TransformConfig(**transform)
        self.transform_cfg = transform
        self.sample_rate = int(sample_rate)
        self._fn = make_transform(self.transform_cfg, self.sample_rate)

    @classmethod
    def from_pipeline_config(cls, cfg: PipelineConfig, **kwargs: Any) -> "TransformLayer":
        return cls(cfg.transform, cfg.window.sample_rate, **kwargs)

    def call(self, inputs):
        return self._fn(tf.cast(inputs, tf.float32))

    def compute_output_shape(self, input_shape):
        window_length = input_shape[-1]
        if window_length is None:
            raise ValueError("TransformLayer needs a known window length (last input axis)")
        return (input_shape[0],) + feature_shape_for(self.transform_cfg, int(window_length))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            transform=dataclasses.asdict(self.transform_cfg), sample_rate=self.sample_rate
        )
        return config
