"""Shards of ~16 MB (about 12 songs), at least 4 per split, so even small splits read in parallel.

TFDS 4.9.10's own choice cannot give small shards: `ShardConfig.get_number_shards` calls a
classmethod that reads the class defaults (64 MiB min, 1 GiB max), so `--max_shard_size_mb`
has no effect and a 130 MB split is one file.  `with_song_shards` swaps in `SongShardConfig`,
through `DownloadConfig.get_shard_config` (the only way TFDS takes a shard config); both
generation paths (in process and Beam) use it.  `--num_shards` is honoured (capped at the
number of examples, where TFDS would fail), and `--max_shard_size_mb` lowers the target.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import shard_utils

TARGET_SHARD_BYTES = 16 << 20  # ~12 songs a shard: GTZAN's train split is ~64 shards
MIN_SHARDS_PER_SPLIT = 4


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
