"""Runs and exports written by autogan_tf 0.1 load and give the same images (tests/fixtures)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from autogan_tf.sampling import LatentSampler
from autogan_tf.training import train_lib

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "v0_1")


@pytest.fixture(scope="module")
def golden():
    with np.load(os.path.join(FIXTURE, "golden.npz")) as data:
        return {k: data[k] for k in data}


@pytest.fixture
def run_copy(tmp_path):
    """A copy of the 0.1 training run, so that nothing writes into the repository."""
    dst = tmp_path / "train_run"
    shutil.copytree(os.path.join(FIXTURE, "train_run"), dst)
    return str(dst)


def test_v0_1_checkpoint_loads_and_gives_the_same_images(golden, run_copy):
    gen, info = train_lib.load_generator_from_checkpoint(run_copy)
    assert info["kind"] == "best"
    assert info["arch"] == [0, 1, 2, 1, 1, 2, 0, 1, 1, 1, 0, 2, 0, 3]
    images = gen(tf.constant(golden["latents"]), training=False).numpy()
    np.testing.assert_allclose(images, golden["checkpoint_images"], atol=1e-5)
    sampled = LatentSampler(lambda z: gen(z, training=False), gen.latent_dim, seed=3)(6)
    np.testing.assert_allclose(sampled.numpy(), golden["checkpoint_seed3"], atol=1e-5)


def test_v0_1_latest_checkpoint_restores_every_weight(run_copy, golden):
    shutil.rmtree(os.path.join(run_copy, "best"))
    gen, info = train_lib.load_generator_from_checkpoint(run_copy)
    assert info["kind"] == "latest" and info["checkpoint"].endswith("ckpt-3")
    images = gen(tf.constant(golden["latents"]), training=False).numpy()
    # The best generator was written at the last iteration, from the same EMA weights.
    np.testing.assert_allclose(images, golden["checkpoint_images"], atol=1e-5)


def test_v0_1_export_serves_the_same_images(golden):
    loaded = tf.saved_model.load(os.path.join(FIXTURE, "export", "1"))
    served = loaded.signatures["serving_default"](latent=tf.constant(golden["latents"]))
    np.testing.assert_allclose(served["images"].numpy(), golden["served_images"], atol=1e-6)
    generated = loaded.signatures["generate"](seed=tf.constant(3, tf.int64),
                                              num_images=tf.constant(6))
    np.testing.assert_array_equal(generated["images"].numpy(), golden["generate_seed3"])
    np.testing.assert_allclose(golden["served_images"], golden["checkpoint_images"], atol=1e-6)
