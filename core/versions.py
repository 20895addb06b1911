"""Which versions of a library a compat module was written for, checked at run time.

A compat module (e.g. ``tuning.keras_tuner_compat``) holds what a library offers no public
form for; it declares ``SUPPORTED = (">=1.4.7", "<1.5")`` and calls `check_version` before
relying on it, so a release that moved those internals fails with one clear line instead of
silently misbehaving.
"""

from __future__ import annotations

from typing import Optional, Sequence

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from core.errors import UserError


class UnsupportedVersionError(UserError):
    """An installed library is outside the range a compat module was written for."""


def outside_range(name: str, installed: str, supported: Sequence[str],
                  module: str = "") -> Optional[str]:
    """None when `installed` is in `supported` (specifiers such as ">=1.4.7"), else why not."""
    spec = SpecifierSet(",".join(supported))
    if spec.contains(Version(installed), prereleases=True):
        return None
    where = f" ({module} was written for it)" if module else ""
    return (f"{name} {installed} is installed, but this project supports {name} {spec}{where}; "
            f"install a supported version: pip install '{name}{spec}'")


def check_version(name: str, installed: str, supported: Sequence[str], module: str = "") -> None:
    """UnsupportedVersionError naming the package, the installed version and the range."""
    problem = outside_range(name, installed, supported, module)
    if problem:
        raise UnsupportedVersionError(problem)
