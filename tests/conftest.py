"""Shared pytest setup: quiet TensorFlow logs, the ``slow`` marker and shared fixtures."""

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


@pytest.fixture
def graph_op_types():
    """`f(concrete_function)` -> the op types of a traced function, those of its nested
    functions (branches, gradients) included."""
    def op_types(concrete) -> list:
        gdef = concrete.graph.as_graph_def()
        return [n.op for n in list(gdef.node)
                + [n for f in gdef.library.function for n in f.node_def]]
    return op_types


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory):
    """A cache dir holding the digits classifier (built once per test process)."""
    from autogan_tf.eval import digits_classifier

    cache = str(tmp_path_factory.getbasetemp() / "autogan_tf_cache")
    digits_classifier.ensure_digits_classifier(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_train_run(tmp_path_factory, digits_cache):
    """A training run directory of a tiny digits generator, trained for two iterations.

    Written by ``train_lib.Trainer(cfg, run_dir).train()``: ``config.json``, ``ckpt/`` (a
    checkpoint per iteration) and ``best/ema_generator`` (from the final evaluation).

    Returns:
        ``(run_dir, cfg)``: the directory and its ``train_lib.TrainConfig``.
    """
    from autogan_tf.training import train_lib
    from autogan_tf.training.gan import GANConfig

    cfg = train_lib.TrainConfig(
        dataset="digits",
        bottom_width=2,
        gf=8,
        df=8,
        gan=GANConfig(latent_dim=16, d_batch_size=8, g_batch_size=8, n_critic=1, ema_decay=0.9),
        max_iterations=2,
        eval_every=1000,
        eval_images=100,
        real_num_images=200,
        classifier="digits",
        cache_dir=digits_cache,
        checkpoint_every=1,
        progress=False,
    )
    run_dir = str(tmp_path_factory.mktemp("tiny_train_run"))
    train_lib.Trainer(cfg, run_dir).train()
    return run_dir, cfg
