"""Shared pytest setup: quiet TensorFlow logs, a seeded RNG fixture and the ``slow`` marker."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Lets `pytest tests/...` import the package from the repository root without installing it.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than about 20 s on two CPU cores")


@pytest.fixture
def rng():
    """A numpy generator seeded the same way in every test."""
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory):
    """A cache dir holding the digits classifier (built once per test process)."""
    from autogan_tf import digits_classifier

    cache = str(tmp_path_factory.getbasetemp() / "autogan_tf_cache")
    digits_classifier.ensure_digits_classifier(cache)
    return cache
