"""Where the pretrained musicnn checkpoints are, and how their tensors become Keras weights.

The checkpoints ship inside the ``musicnn`` 0.1.0 wheel (``pip install --no-deps
musicnn==0.1.0``), one folder per network (``MSD_musicnn/``, ``MTT_musicnn/``, ``MSD_vgg/``,
``MTT_vgg/``), each a TF1 checkpoint whose files have an empty name: the checkpoint prefix is the
folder itself with a trailing slash.  (Its ``checkpoint`` file points to the author's home
folder, so ``tf.train.load_checkpoint`` on the folder fails; the reader is opened on the prefix.)

The wheel's Python modules are never imported: its ``__init__`` chain pins numpy<1.17, builds
layers Keras 3 refuses and disables eager execution.  The folder is located with
``importlib.util.find_spec`` (which does not run the package) and the tag names are read from
its ``configuration.py`` with ``ast``.

``assign_checkpoint`` copies tensors into a model along a map ``{layer name: TF1 scope}``
and checks that every non-optimizer tensor of the checkpoint is used exactly once, so a wrong
map or a damaged checkpoint fails loudly, naming the tensors.
"""

from __future__ import annotations

import ast
import collections
import importlib.util
import pathlib
from typing import Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

from core.errors import ConfigError, WeightsNotFoundError

INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"
# weights name -> the wheel's folder
CHECKPOINT_FOLDERS = {
    "msd": "MSD_musicnn",
    "mtt": "MTT_musicnn",
    "msd_vgg": "MSD_vgg",
    "mtt_vgg": "MTT_vgg",
}
# Training state saved next to the weights (Adam slots, step counters): never mapped.
_OPTIMIZER_SUFFIXES = ("/Adam", "/Adam_1")
_OPTIMIZER_NAMES = ("beta1_power", "beta2_power", "global_step")


def package_dir() -> pathlib.Path:
    """The installed ``musicnn`` package folder (not imported); WeightsNotFoundError if absent."""
    spec = importlib.util.find_spec("musicnn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise WeightsNotFoundError(
            f"the pretrained musicnn weights are not installed: {INSTALL_HINT}"
        )
    return pathlib.Path(locations[0])


def is_installed() -> bool:
    """Whether the ``musicnn`` wheel with its checkpoints is installed (nothing is imported)."""
    try:
        checkpoint_dir("msd")
    except WeightsNotFoundError:
        return False
    return True


def checkpoint_dir(weights: str) -> pathlib.Path:
    """The folder of checkpoint ``weights`` (a ``CHECKPOINT_FOLDERS`` key) in the wheel."""
    if weights not in CHECKPOINT_FOLDERS:
        raise ConfigError(
            f"unknown musicnn weights {weights!r}; valid: {', '.join(CHECKPOINT_FOLDERS)}"
        )
    folder = package_dir() / CHECKPOINT_FOLDERS[weights]
    if not (folder / ".index").is_file():
        raise WeightsNotFoundError(
            f"no musicnn checkpoint in {folder} (missing .index); reinstall: {INSTALL_HINT}"
        )
    return folder


def tag_names(weights: str) -> list[str]:
    """The 50 tags of ``weights``, in output order (``MSD_LABELS``/``MTT_LABELS`` of the wheel)."""
    checkpoint_dir(weights)  # validates the name and the install
    variable = "MSD_LABELS" if weights.startswith("msd") else "MTT_LABELS"
    path = package_dir() / "configuration.py"
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == variable for t in node.targets
        ):
            return [str(tag) for tag in ast.literal_eval(node.value)]
    raise ValueError(f"{path} defines no {variable}")


def is_optimizer_state(key: str) -> bool:
    """True for checkpoint tensors that are training state, not weights (Adam slots, steps)."""
    return key.endswith(_OPTIMIZER_SUFFIXES) or key in _OPTIMIZER_NAMES


def check_exactly_once(mapped: Iterable[str], available: Iterable[str]) -> None:
    """ValueError unless ``mapped`` uses each non-optimizer key of ``available`` exactly once.

    ``mapped`` lists the checkpoint key of every model variable; ``available`` is the
    checkpoint's keys.  The message names the missing, repeated and unused tensors.
    """
    counts = collections.Counter(mapped)
    available = set(available)
    weights = {k for k in available if not is_optimizer_state(k)}
    problems = []
    missing = sorted(set(counts) - available)
    if missing:
        problems.append(f"not in the checkpoint: {', '.join(missing)}")
    repeated = sorted(k for k, n in counts.items() if n > 1)
    if repeated:
        problems.append(f"used more than once: {', '.join(repeated)}")
    unused = sorted(weights - set(counts))
    if unused:
        problems.append(f"unused checkpoint tensors: {', '.join(unused)}")
    if problems:
        raise ValueError("musicnn checkpoint does not match the model; " + "; ".join(problems))


def _fit_shape(value: np.ndarray, shape: tuple[int, ...], key: str) -> np.ndarray:
    """``value`` for a variable of ``shape``: as is, or a TF1 Conv2D kernel whose input has one
    channel, ``[time, width, 1, out]``, as the equivalent Conv1D kernel ``[time, width, out]``."""
    if value.shape == shape:
        return value
    if value.ndim == 4 and value.shape[2] == 1 and value.shape[:2] + value.shape[3:] == shape:
        return value[:, :, 0, :]
    raise ValueError(f"checkpoint tensor {key} has shape {value.shape}, the model wants {shape}")


def assign_checkpoint(model: keras.Model, prefix: str, scopes: Mapping[str, str]) -> None:
    """Copy checkpoint ``prefix`` into ``model``: layer ``name``'s variable ``v`` gets tensor
    ``scopes[name] + "/" + v`` (``kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``,
    ``moving_variance``).  Every layer with variables must be in ``scopes``, and every
    non-optimizer tensor must be used exactly once (``check_exactly_once``); nothing is
    assigned unless all of that holds."""
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    available = reader.get_variable_to_shape_map()
    pairs = []
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in scopes:
            raise ValueError(f"model layer {layer.name!r} has no musicnn checkpoint scope")
        pairs += [(v, f"{scopes[layer.name]}/{v.name}") for v in layer.weights]
    check_exactly_once([key for _, key in pairs], available)
    values = [_fit_shape(reader.get_tensor(key), tuple(v.shape), key) for v, key in pairs]
    for (variable, _), value in zip(pairs, values):
        variable.assign(value)
