"""The TFDS internals the builder relies on, in one place (see core/versions.py).

1. **Song-sized shards.**  TFDS 4.9.x's own shard count cannot give small shards:
   ``ShardConfig.get_number_shards`` reads the class defaults (64 MiB min, 1 GiB max), so
   ``--max_shard_size_mb`` has no effect and a 130 MB split is one file, which tf.data then
   reads without parallelism.  TFDS takes a shard config only through
   ``DownloadConfig.get_shard_config``, so ``with_song_shards`` swaps in `SongShardConfig`
   (a subclass of the internal ``shard_utils.ShardConfig``): ~16 MiB shards, at least 4 per
   split; ``--num_shards`` is honoured (capped at the number of examples, where TFDS fails).
2. **A hook around split generation.**  ``_generate_splits`` is the one method that receives
   the DownloadConfig (shards, Beam options) and returns the written splits' sizes; the builder
   needs both (`GenerationHooks` forwards it to the builder's ``generate_splits_around``).
3. **Beam counters.**  ``_process_pipeline_result`` is where TFDS hands over a Beam build's
   result (`GenerationHooks` forwards it to ``on_beam_result``).
"""

from __future__ import annotations

import dataclasses
import math
from importlib import metadata
from typing import Optional

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import shard_utils

from core.versions import check_version as _check

DISTRIBUTION = "tensorflow-datasets"
SUPPORTED = (">=4.9.8", "<4.10")

TARGET_SHARD_BYTES = 16 << 20  # ~12 songs a shard: GTZAN's train split is ~64 shards
MIN_SHARDS_PER_SPLIT = 4


def check_version(installed: str | None = None) -> None:
    """UnsupportedVersionError unless ``installed`` (default: the installed one) is in
    `SUPPORTED`."""
    _check(DISTRIBUTION, installed or metadata.version(DISTRIBUTION), SUPPORTED, __name__)


@dataclasses.dataclass(frozen=True)
class SongShardConfig(shard_utils.ShardConfig):
    """Shards of about `target_shard_size`, at least `MIN_SHARDS_PER_SPLIT` per split."""

    target_shard_size: int = TARGET_SHARD_BYTES

    def get_number_shards(
        self, total_size: int, num_examples: int, uses_precise_sharding: bool = True
    ) -> int:
        if self.num_shards:
            return max(1, min(self.num_shards, num_examples))
        n = math.ceil((total_size + num_examples * self.overhead) / self.target_shard_size)
        return max(1, min(num_examples, max(n, MIN_SHARDS_PER_SPLIT)))


@dataclasses.dataclass
class _SongShardDownloadConfig(tfds.download.DownloadConfig):
    """A DownloadConfig whose shard config is `SongShardConfig`."""

    def get_shard_config(self) -> shard_utils.ShardConfig:
        return SongShardConfig(
            num_shards=self.num_shards,
            min_shard_size=self.min_shard_size,
            max_shard_size=self.max_shard_size,
            target_shard_size=min(self.max_shard_size, TARGET_SHARD_BYTES),
        )


def with_song_shards(
    config: Optional[tfds.download.DownloadConfig],
) -> tfds.download.DownloadConfig:
    """A copy of `config` (every field, Beam options included) that shards by `SongShardConfig`."""
    config = config or tfds.download.DownloadConfig()
    fields = dataclasses.fields(config)
    return _SongShardDownloadConfig(**{f.name: getattr(config, f.name) for f in fields if f.init})


class GenerationHooks:
    """Mixin for a ``GeneratorBasedBuilder``: TFDS's private generation hooks, forwarded to
    ``generate_splits_around(dl_manager, download_config, generate)`` (``generate(config)``
    runs TFDS's own split generation and returns its SplitInfos) and ``on_beam_result``."""

    def _generate_splits(self, dl_manager, download_config):
        def generate(config):
            return super(GenerationHooks, self)._generate_splits(dl_manager, config)

        return self.generate_splits_around(dl_manager, download_config, generate)

    def _process_pipeline_result(self, pipeline_result) -> None:
        self.on_beam_result(pipeline_result)
