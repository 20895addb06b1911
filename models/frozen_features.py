"""What an approach built on a frozen network tells the embedding store about its features.

An approach whose estimator reads the outputs of a network that never trains (``musicnn``: the
frozen musicnn network, then a probe) can have those outputs computed once per song and kept
(``pipeline.stream.embedding_store``): the network's pass is the expensive part, the estimator
on top costs seconds.  ``FrozenFeatures`` is the approach's side of that contract, built by the
registry from the approach's hyperparameters (``models.registry.frozen_features``):

- ``name`` and ``identity``: which network and which weights exactly (a checksum of the weight
  files, the feature code's version), part of the store's key, so other weights never read
  these features;
- ``layers``: every output the store keeps (one forward pass gives them all: a probe on
  another layer reuses the same store), ``layer`` the one this approach's estimator reads;
- ``compute``: a batch of the pipeline's features ``[B, ...]`` -> ``{layer: [B, d]}``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class FrozenFeatures:
    name: str
    layers: tuple[str, ...]
    layer: str
    identity: dict
    compute: Callable = dataclasses.field(compare=False)

    def __post_init__(self):
        if self.layer not in self.layers:
            raise ValueError(f"layer {self.layer!r} is not one of the stored {self.layers}")
