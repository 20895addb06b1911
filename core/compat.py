"""Version ranges of the libraries whose internals a compat module relies on.

Each ``*_compat`` module holds the only uses of one library's non-public API in this project
(tests/test_compat.py scans the rest of the code for any) and declares the versions it was
written and tested for.  ``check_supported`` turns "the next release moved that internal" into
one clear message naming the library, the installed version and the range, instead of an
AttributeError deep inside a build or a search.
"""

from __future__ import annotations

from importlib import metadata

from packaging.specifiers import SpecifierSet
from packaging.version import Version


class UnsupportedVersionError(RuntimeError):
    """An installed library is outside the range a compat module was written for."""


def installed_version(distribution: str) -> Version:
    return Version(metadata.version(distribution))


def check_supported(distribution: str, supported: str, compat_module: str) -> Version:
    """The installed version of ``distribution``; raises if it is outside ``supported``."""
    version = installed_version(distribution)
    if version not in SpecifierSet(supported):
        raise UnsupportedVersionError(
            f"{distribution} {version} is installed, but {compat_module} was written for "
            f"{distribution}{supported}: its non-public API may have changed. Install a "
            f"version in that range (requirements.lock has a tested one), or check the module "
            f"against {distribution} {version} and widen its range."
        )
    return version
