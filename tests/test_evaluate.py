"""Tests of autogan_tf.evaluate: image sources, SavedModels, training runs, errors, the binary."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from autogan_tf import data, evaluate
from autogan_tf.eval import metrics
from autogan_tf.training import train_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _TinyGenerator(tf.Module):
    """latent [N, 128] -> tanh images [N, 16, 16, 3]; ``scale`` tells versions apart."""

    def __init__(self, scale):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(128, 16 * 16 * 3)).astype(np.float32) * scale)

    @tf.function(input_signature=[tf.TensorSpec([None, 128], tf.float32, name="latent")])
    def serve(self, latent):
        return {"images": tf.tanh(tf.reshape(latent @ self.w, [-1, 16, 16, 3]))}


def _export(path, scale):
    module = _TinyGenerator(scale)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _run_binary(args, cache):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, AUTOGAN_TF_CACHE=cache, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, "-m", "autogan_tf.evaluate", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


# ----------------------------------------------------------------------------- library


def test_load_generated_images_npz_and_folder(tmp_path, rng):
    floats = rng.uniform(-1, 1, (6, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "f.npz", images=floats)
    np.testing.assert_array_equal(evaluate.load_generated_images(str(tmp_path / "f.npz")), floats)
    grey = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", grey)
    assert evaluate.load_generated_images(str(tmp_path / "g.npz")).shape == (4, 8, 8, 3)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        image = tf.constant(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(image))
    assert evaluate.load_generated_images(str(folder)).shape == (3, 8, 8, 3)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.full((4, 8, 8, 3), 200.0, np.float32), r"\[-1, 1\]"),
        (np.zeros((4, 8, 8, 5), np.float32), "shape"),
        (np.zeros((4, 8, 8, 3), np.int32), "int32"),
    ],
)
def test_bad_generated_images(tmp_path, array, match):
    np.savez(tmp_path / "bad.npz", images=array)
    with pytest.raises(evaluate.EvaluationError, match=match):
        evaluate.load_generated_images(str(tmp_path / "bad.npz"))


def test_missing_inputs(tmp_path):
    with pytest.raises(evaluate.EvaluationError, match="No such"):
        evaluate.load_generated_images(str(tmp_path / "none.npz"))
    with pytest.raises(evaluate.EvaluationError, match="No such"):
        evaluate.resolve_saved_model_dir(str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(evaluate.EvaluationError, match="saved_model.pb"):
        evaluate.resolve_saved_model_dir(str(tmp_path / "empty"))


def test_evaluate_saved_model_picks_highest_version(tmp_path, digits_cache):
    base = tmp_path / "export" / "tiny"
    _export(base / "1", scale=0.0)  # Constant images.
    _export(base / "10", scale=0.1)
    _export(base / "2", scale=0.0)
    assert evaluate.resolve_saved_model_dir(str(base)) == str(base / "10")
    classifier = metrics.load_classifier("digits", digits_cache)
    stats = metrics.real_statistics("digits", 16, classifier, cache_dir=digits_cache)
    report = evaluate.evaluate_saved_model(
        str(base), 200, classifier, real_stats=stats, seed=3, splits=2, batch_size=64
    )
    again = evaluate.evaluate_saved_model(
        str(base), 200, classifier, real_stats=stats, seed=3, splits=2, batch_size=64
    )
    constant = evaluate.evaluate_saved_model(
        str(base / "1"), 200, classifier, real_stats=stats, seed=3, splits=2, batch_size=64
    )
    assert report["saved_model"] == str(base / "10") and report["num_images"] == 200
    assert report["is_mean"] == pytest.approx(again["is_mean"], rel=1e-9)  # Seeded latents.
    assert report["fid"] == pytest.approx(again["fid"], rel=1e-9)
    assert constant["is_mean"] == pytest.approx(1.0, abs=1e-6)  # One image, one class.
    assert report["is_mean"] > 1.0 and report["fid"] > 0.0


def test_saved_model_without_latent_signature(tmp_path):
    module = _TinySavedModelWithTwoInputs()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.serve})
    with pytest.raises(evaluate.EvaluationError, match="latent"):
        evaluate.saved_model_sampler(str(tmp_path / "m"))


class _TinySavedModelWithTwoInputs(tf.Module):
    @tf.function(
        input_signature=[tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)]
    )
    def serve(self, a, b):
        return {"images": a + tf.cast(b, tf.float32)[:, None]}


def test_stats_from_another_classifier_rejected(tmp_path, digits_cache):
    path = str(tmp_path / "stats.npz")
    metrics.save_statistics(
        path, metrics.Statistics(np.zeros(64), np.eye(64), {"classifier_id": "inception/x"})
    )
    classifier = metrics.load_classifier("digits", digits_cache)
    with pytest.raises(metrics.StatsError, match="inception/x"):
        evaluate.resolve_real_stats(classifier, real_stats=path)
    assert evaluate.resolve_real_stats(classifier) is None


def _score_with_stateless_latents(generator, seed, num_images, classifier, batch_size):
    """IS/FID of ``generator`` with latents stateless_normal([n, d], seed=[seed, first index])."""
    position = 0

    def sample_fn(n):
        nonlocal position
        latent = tf.random.stateless_normal([n, generator.latent_dim], seed=[seed, position])
        position += n
        return generator(latent, training=False)

    return metrics.score_generator(sample_fn, num_images, classifier, splits=2,
                                   batch_size=batch_size)


def test_evaluate_checkpoint_matches_score_generator(tiny_train_run, digits_cache):
    run_dir, cfg = tiny_train_run
    classifier = metrics.load_classifier("digits", digits_cache)
    report = evaluate.evaluate_checkpoint(
        run_dir, 120, classifier, seed=5, splits=2, batch_size=50
    )
    generator, info = train_lib.load_generator_from_checkpoint(run_dir)
    expected = _score_with_stateless_latents(generator, 5, 120, classifier, batch_size=50)
    assert info["kind"] == "best" and report["checkpoint"] == info
    assert report["checkpoint"]["arch"] == list(cfg.arch) and report["num_images"] == 120
    assert report["fid"] is None
    assert report["is_mean"] == pytest.approx(expected["is_mean"], rel=1e-5)
    assert report["is_std"] == pytest.approx(expected["is_std"], rel=1e-4, abs=1e-6)
    # Another seed draws other latents, hence (slightly) other scores.
    other = evaluate.evaluate_checkpoint(
        run_dir, 120, classifier, seed=6, splits=2, batch_size=50
    )
    assert other["is_mean"] != pytest.approx(expected["is_mean"], rel=1e-7)


def test_checkpoint_sampler_batches_and_accepts_a_prefix(tiny_train_run):
    run_dir, cfg = tiny_train_run
    prefix = os.path.join(run_dir, "ckpt", "ckpt-2")
    sampler = evaluate.checkpoint_sampler(prefix, seed=3, batch_size=4)
    assert sampler.info["kind"] == "prefix" and sampler.info["checkpoint"] == prefix
    assert sampler.image_shape() == (cfg.resolution, cfg.resolution, 3)
    images = sampler(10).numpy()  # Three generator calls: 4 + 4 + 2 images.
    assert images.shape == (10, cfg.resolution, cfg.resolution, 3) and images.dtype == np.float32
    assert -1.0 <= images.min() and images.max() <= 1.0
    latent = tf.random.stateless_normal([10, cfg.gan.latent_dim], seed=[3, 0])
    expected = sampler.generator(latent[:4], training=False).numpy()
    np.testing.assert_allclose(images[:4], expected, atol=1e-5)
    assert not np.allclose(images[:4], images[4:8])


def test_checkpoint_errors(tmp_path, tiny_train_run):
    with pytest.raises(evaluate.EvaluationError, match="neither a training run directory"):
        evaluate.checkpoint_sampler(str(tmp_path / "no_such_run"))
    run_dir, _ = tiny_train_run
    untrained = tmp_path / "untrained_run"  # A run's config.json, no checkpoint yet.
    untrained.mkdir()
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        (untrained / "config.json").write_text(f.read())
    with pytest.raises(evaluate.EvaluationError, match="without checkpoints") as caught:
        evaluate.checkpoint_sampler(str(untrained))
    assert isinstance(caught.value.__cause__, train_lib.CheckpointError)


# ----------------------------------------------------------------------------- binary


def test_binary_end_to_end_on_npz(tmp_path, digits_cache):
    images = data.load_images("digits", 16, max_images=300)
    np.savez(tmp_path / "samples.npz", images=images)
    output = tmp_path / "out" / "report.json"
    result = _run_binary(
        [
            f"--images={tmp_path / 'samples.npz'}",
            "--classifier=digits",
            "--dataset=digits",
            "--num_images=300",
            "--batch_size=100",
            "--splits=3",
            f"--output={output}",
            "--noprogress",
        ],
        digits_cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["num_images"] == 300
    assert report["classifier"] == "digits-cnn-v1/seed=0"
    assert report["is_mean"] > 7.0  # Real digits are confidently classified into 10 classes.
    # 300 real digits against all 1,797: small (about 15, the small-sample bias of FID in 64-d);
    # uniform noise scores about 1,600 with this classifier.
    assert 0.0 <= report["fid"] < 50.0
    assert report["real_stats"]["dataset"] == "digits" and report["real_stats"]["resolution"] == 16
    assert {"load_classifier_s", "real_stats_s", "generate_and_classify_s", "total_s"} <= set(
        report["timings"]
    )


def test_binary_reports_bad_input_and_exits_nonzero(tmp_path, digits_cache):
    result = _run_binary(
        [f"--images={tmp_path / 'missing.npz'}", "--classifier=digits", "--noprogress"],
        digits_cache,
    )
    assert result.returncode != 0
    assert "No such image file or folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_binary_on_a_training_run_and_a_bogus_path(tmp_path, tiny_train_run, digits_cache):
    run_dir, _ = tiny_train_run
    output = tmp_path / "report.json"
    result = _run_binary(
        [
            f"--checkpoint={run_dir}",
            "--classifier=digits",
            "--num_images=120",
            "--batch_size=50",
            "--splits=2",
            "--seed=5",
            f"--output={output}",
            "--noprogress",
        ],
        digits_cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    classifier = metrics.load_classifier("digits", digits_cache)
    generator, _ = train_lib.load_generator_from_checkpoint(run_dir)
    expected = _score_with_stateless_latents(generator, 5, 120, classifier, batch_size=50)
    assert report["is_mean"] == pytest.approx(expected["is_mean"], rel=1e-5)
    assert report["source"]["checkpoint"]["kind"] == "best"
    assert report["source"]["checkpoint"]["path"] == os.path.abspath(run_dir)
    assert report["seed"] == 5 and report["fid"] is None

    bogus = tmp_path / "no_such_run"
    result = _run_binary([f"--checkpoint={bogus}", "--classifier=digits", "--noprogress"],
                         digits_cache)
    assert result.returncode == 1
    assert f"evaluate: error: {bogus} is neither a training run directory" in result.stderr
    assert "Traceback" not in result.stderr
