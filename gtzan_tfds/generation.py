"""Turn a split's plan into examples: in this process, or as a Beam transform for many workers.

Both paths run the same module-level functions (`make_example`, `_example_or_skip`), which hold
no builder state: Beam pickles them, with their arguments, to its workers.  A file that does not
decode, or holds more than the config's `max_song_seconds` of audio (read from its header before
decoding), is skipped and logged (`Skipping <file>: <reason>`), never written; both paths end a split
by writing its part of the build report (build_report.py).  A Beam build also counts songs in
Beam metrics, namespace `gtzan_tfds`: `<split>_written` and `<split>_skipped`.

Which path runs is the builder's choice (Beam when the build is given Beam options or a
runner); the examples are the same either way (tests/test_builder_beam.py compares them).
"""

from __future__ import annotations

import functools
from typing import Any, Iterator, Optional, Union

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from core.audio import SAMPLE_RATE, float_to_int16
from core.errors import AudioDecodeError, EmptySplitError
from gtzan_tfds import build_report
from gtzan_tfds.song_files import SongFile
from gtzan_tfds.split_plan import SplitPlan, Synthesis

METRICS_NAMESPACE = "gtzan_tfds"
_SKIPPED = "skipped"  # tag of the Beam output that carries skipped files
_SHOWN = 5  # files quoted in an error message

KeyExample = tuple[str, dict[str, Any]]


def make_example(
    song: Union[str, SongFile], synthesis: Optional[Synthesis], audio_feature: Any,
    max_seconds: Optional[float] = None,
) -> KeyExample:
    """(song id, example) of one song: generated from its id, or decoded from its file.

    Raises:
      AudioDecodeError: the file does not decode; AudioTooLongError (a subclass): it holds
        more than ``max_seconds`` of audio (known from the header before decoding, or when
        decoding passes it for MP3/Ogg).  Both are skipped, with the reason, by the callers.
    """
    if synthesis is not None:
        from gtzan_tfds import synthetic_audio  # numpy/scipy: only when building

        genre, index = song.split(".")
        audio = synthetic_audio.generate_song(
            genre, int(index), seed=synthesis.seed, clip_seconds=synthesis.clip_seconds
        )
        return song, _example(audio, audio_feature, genre, song, "")
    from gtzan_tfds import audio_io  # soundfile and, to resample, TensorFlow: only here

    audio = float_to_int16(audio_io.read_audio(song.path, SAMPLE_RATE, max_seconds=max_seconds))
    return song.song_id, _example(audio, audio_feature, song.label, song.song_id, song.relpath)


def _example(audio: np.ndarray, audio_feature: Any, label: str, sid: str, filename: str):
    # tfds.features.Audio passes numpy arrays through without applying its `encoding`, so
    # Encoding.BYTES would be lost (the serializer then rejects the int16 array). A Tensor
    # feature of the same dtype and encoding does that step (int16 -> raw bytes, with its
    # dtype/shape checks); on disk and when read it is a standard Audio feature.
    audio_bytes = _raw_bytes_feature(audio_feature.dtype).encode_example(audio)
    return {
        "audio": np.array(audio_bytes, dtype=object),
        "label": label,
        "song_id": sid,
        "filename": filename,
        "duration_seconds": np.float32(len(audio) / SAMPLE_RATE),
    }


@functools.lru_cache(maxsize=None)
def _raw_bytes_feature(dtype):
    """A Tensor feature of the builder's Audio dtype with its ``Encoding.BYTES``: made once,
    not once per song."""
    return tfds.features.Tensor(shape=(None,), dtype=dtype, encoding=tfds.features.Encoding.BYTES)


def in_process(plan: SplitPlan, audio_feature: Any, data_dir: str) -> Iterator[KeyExample]:
    """Yields the split's examples one song at a time; ends by writing its report part."""
    skipped = []
    for song in plan.songs:
        try:
            yield make_example(song, plan.synthesis, audio_feature, plan.max_song_seconds)
        except AudioDecodeError as e:
            skipped.append(_skip(song, e))
    _finish_split(skipped, plan=plan, data_dir=data_dir)


def with_beam(plan: SplitPlan, audio_feature: Any, data_dir: str):
    """A Beam PTransform yielding the split's examples; songs are decoded on the workers.

    Create(songs) | FlatMap(decode). Beam's Create ends in a Reshuffle of its own, which spreads
    the songs over the workers before the (costly) decoding. Nothing reshuffles the decoded
    examples: TFDS's Beam writer groups them by shard anyway, and one more shuffle would hold
    every decoded song once more.
    """
    beam = tfds.core.lazy_imports.apache_beam
    decode = functools.partial(
        _example_or_skip, split=plan.split, synthesis=plan.synthesis, audio_feature=audio_feature,
        max_seconds=plan.max_song_seconds,
    )
    finish = functools.partial(_finish_split, plan=plan, data_dir=data_dir)

    @beam.ptransform_fn
    def _examples(root):
        songs = root | "Songs" >> beam.Create(plan.songs)
        made = songs | "Decode" >> beam.FlatMap(decode).with_outputs(_SKIPPED, main="examples")
        _ = (made[_SKIPPED]
             | "CollectSkipped" >> beam.combiners.ToList()
             | "WriteReportPart" >> beam.Map(finish))
        return made.examples

    return _examples()  # pylint: disable=no-value-for-parameter


def _example_or_skip(song, *, split: str, synthesis, audio_feature,
                     max_seconds: Optional[float] = None) -> Iterator[Any]:
    beam = tfds.core.lazy_imports.apache_beam
    try:
        example = make_example(song, synthesis, audio_feature, max_seconds)
    except AudioDecodeError as e:
        tfds.beam.inc_counter(f"{split}_skipped", namespace=METRICS_NAMESPACE)
        yield beam.pvalue.TaggedOutput(_SKIPPED, _skip(song, e))
        return
    tfds.beam.inc_counter(f"{split}_written", namespace=METRICS_NAMESPACE)
    yield example


def _skip(song: SongFile, error: AudioDecodeError) -> tuple[str, str]:
    logging.warning("Skipping %s: %s", song.relpath, error.reason)
    return song.relpath, error.reason


def _finish_split(skipped: list[tuple[str, str]], *, plan: SplitPlan, data_dir: str) -> None:
    """Writes the split's report part; EmptySplitError when every song of it was skipped."""
    order = {song.relpath: i for i, song in enumerate(plan.songs) if isinstance(song, SongFile)}
    skipped = sorted(skipped, key=lambda s: order.get(s[0], 0))  # Beam collects in any order
    if plan.songs and len(skipped) == len(plan.songs):
        reasons = "; ".join(f"{f}: {r}" for f, r in skipped[:_SHOWN])
        raise EmptySplitError(
            f"{plan.dataset}: split {plan.split!r} is empty: all {len(plan.songs)} song(s) "
            f"assigned to it were skipped as undecodable or too long ({reasons})."
        )
    outcome = build_report.SplitOutcome(plan.split, len(plan.songs), tuple(skipped), plan.missing)
    build_report.write_part(data_dir, outcome)
