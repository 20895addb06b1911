"""Non-public library API lives only in the compat modules, and each compat module's library is
in the version range it was written for (a version outside it is one clear error).

The scan reads every module of the project's packages (not the tests) for: imports of a
library's internal modules (a path segment ``src``, ``python``, ``core.utils`` or starting with
``_``), imported names starting with ``_``, ``name._private`` on an imported name, and methods
that override a library class's ``_private`` method.  Only the compat modules may do these.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from core.versions import UnsupportedVersionError, check_version, outside_range

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "gtzan_tfds", "models", "pipeline", "tuning")
COMPAT_MODULES = {"core/tf_compat.py", "gtzan_tfds/tfds_compat.py", "tuning/keras_tuner_compat.py"}
INTERNAL_SEGMENTS = {"src", "python", "protos"}
# Underscored by name, public by documentation: the methods TFDS's builder guide tells every
# dataset to write; ``_abc_impl`` is what abc.ABCMeta puts on every subclass.
DOCUMENTED_HOOKS = {"_info", "_split_generators", "_generate_examples", "_abc_impl"}


def _project_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel not in COMPAT_MODULES:
                yield rel, path


def _is_ours(module: str) -> bool:
    return module.split(".")[0] in PACKAGES


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _internal_module(module: str) -> bool:
    parts = module.split(".")
    return not _is_ours(module) and (
        any(p in INTERNAL_SEGMENTS or _private(p) for p in parts[1:])
        or module.startswith("tensorflow_datasets.core.utils"))


def _scan_imports(tree: ast.AST) -> tuple[list[str], set[str]]:
    """(findings, names bound by imports of other modules)."""
    findings, imported = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _internal_module(alias.name):
                    findings.append(f"line {node.lineno}: import {alias.name}")
                imported.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if _internal_module(node.module) or _private(alias.name):
                    findings.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                imported.add(alias.asname or alias.name)
    return findings, imported


def private_uses(source: str) -> list[str]:
    tree = ast.parse(source)
    findings, imported = _scan_imports(tree)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and _private(node.attr)
                and isinstance(node.value, ast.Name) and node.value.id in imported):
            findings.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return findings


def test_no_private_api_outside_the_compat_modules():
    found = {rel: uses for rel, path in _project_files()
             if (uses := private_uses(path.read_text()))}
    assert not found, f"non-public library API outside {sorted(COMPAT_MODULES)}: {found}"


def _private_overrides(module) -> list[str]:
    """``_private`` methods that a class of ``module`` (or a mixin it defines) writes over a
    library class later in the same MRO."""
    found = set()
    for _, cls in inspect.getmembers(module, inspect.isclass):
        mro = cls.__mro__
        for i, ours in enumerate(mro):
            if ours.__module__ != module.__name__:
                continue
            for name in vars(ours):
                if not _private(name) or name in DOCUMENTED_HOOKS:
                    continue
                for base in mro[i + 1:]:
                    if base is not object and not _is_ours(base.__module__) and name in vars(base):
                        found.add(f"{ours.__name__}.{name} overrides {base.__module__}."
                                  f"{base.__name__}.{name}")
    return sorted(found)


def test_no_override_of_a_library_private_method_outside_the_compat_modules():
    found = {}
    for rel, _ in _project_files():
        module_name = rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")
        module = importlib.import_module(module_name)
        if overrides := _private_overrides(module):
            found[rel] = overrides
    assert not found, f"private overrides outside {sorted(COMPAT_MODULES)}: {found}"


def test_the_scan_finds_what_it_looks_for():
    src = ("import keras_tuner\nfrom keras_tuner.src.engine import trial\n"
           "from tensorflow.python.ops import math_ops\nfrom mod import _hidden\n"
           "import layers\nx = layers._inbound_nodes\ny = self._mine\n")
    assert [f.split(":")[0] for f in private_uses(src)] == ["line 2", "line 3", "line 4",
                                                           "line 6"]


COMPAT = {"core.tf_compat": "tensorflow", "gtzan_tfds.tfds_compat": "tensorflow-datasets",
          "tuning.keras_tuner_compat": "keras-tuner"}


@pytest.mark.parametrize("compat", sorted(COMPAT))
def test_each_compat_module_supports_the_installed_version(compat):
    """Fails, naming the library, its version and the range, after an upgrade out of range."""
    from importlib import metadata

    module = importlib.import_module(compat)
    installed = metadata.version(COMPAT[compat])
    problem = outside_range(COMPAT[compat], installed, module.SUPPORTED, compat)
    assert problem is None, (f"{problem}. Check {compat} against {COMPAT[compat]} {installed}'s "
                             "internals, then widen its SUPPORTED")
    module.check_version()  # the check the code runs before relying on the internals


@pytest.mark.parametrize("compat", sorted(COMPAT))
@pytest.mark.parametrize("installed", ["0.1", "99.0", "99.0rc1"])
def test_a_version_outside_the_range_is_one_clear_error(compat, installed):
    module = importlib.import_module(compat)
    with pytest.raises(UnsupportedVersionError) as err:
        module.check_version(installed)
    assert str(err.value).startswith(f"{COMPAT[compat]} {installed} is installed, but this "
                                     f"project supports {COMPAT[compat]} ")
    assert f"({compat} was written for it)" in str(err.value)


def test_generic_check():
    check_version("lib", "1.4.8", (">=1.4.7", "<1.5"))
    check_version("lib", "1.4.9.dev0", (">=1.4.7", "<1.5"))  # a pre-release inside counts
    with pytest.raises(UnsupportedVersionError, match="^lib 1.5.0 is installed"):
        check_version("lib", "1.5.0", (">=1.4.7", "<1.5"))
