"""The compat modules: each library whose internals the project relies on is a version the
module was written for, and a version outside that range is one clear error.

`assert_supported(name, installed, supported, module)` is the generic check: one test per
compat module (keras-tuner here; add a line for another library's module).
"""

from __future__ import annotations

import pytest

from core.versions import UnsupportedVersionError, check_version, outside_range


def assert_supported(name: str, installed: str, supported, module: str) -> None:
    problem = outside_range(name, installed, supported, module)
    assert problem is None, f"{problem}. Check {module} against {name} {installed}'s " \
        "internals, then widen its SUPPORTED"


def test_keras_tuner_is_a_supported_version():
    import keras_tuner

    from tuning import keras_tuner_compat

    assert_supported("keras-tuner", keras_tuner.__version__, keras_tuner_compat.SUPPORTED,
                     keras_tuner_compat.__name__)
    keras_tuner_compat.check_version()  # the check a search runs: passes here


@pytest.mark.parametrize("installed", ["1.4.6", "1.5.0", "2.0.0rc1"])
def test_a_version_outside_the_range_is_one_clear_error(installed):
    from tuning import keras_tuner_compat

    with pytest.raises(UnsupportedVersionError) as err:
        keras_tuner_compat.check_version(installed)
    assert str(err.value) == (
        f"keras-tuner {installed} is installed, but this project supports keras-tuner <1.5,>=1.4.7 "
        "(tuning.keras_tuner_compat was written for it); install a supported version: "
        "pip install 'keras-tuner<1.5,>=1.4.7'")


def test_generic_check():
    check_version("lib", "1.4.8", (">=1.4.7", "<1.5"))
    check_version("lib", "1.4.9.dev0", (">=1.4.7", "<1.5"))  # a pre-release inside counts
    with pytest.raises(UnsupportedVersionError, match="^lib 1.5.0 is installed"):
        check_version("lib", "1.5.0", (">=1.4.7", "<1.5"))
