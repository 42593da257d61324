"""Tests of evaluation: eval/evaluate_lib (files, generators, SavedModels, runs) and its binary."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from autogan_tf import data, errors, sampling
from autogan_tf.eval import evaluate_lib, metrics
from autogan_tf.serving import export_lib
from autogan_tf.training import train_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_ID = "digits-cnn-v1/seed=0"


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


def _run_binary(args, cache, **env):
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, AUTOGAN_TF_CACHE=cache, TF_CPP_MIN_LOG_LEVEL="2",
               **env)
    return subprocess.run(
        [sys.executable, "-m", "autogan_tf.evaluate", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def digits(digits_cache):
    """The digits classifier and 300 real digits at 16 px (uint8)."""
    return (metrics.load_classifier("digits", digits_cache),
            data.load_images("digits", 16, max_images=300))


@pytest.fixture(scope="module")
def run_and_export(tiny_train_run, tmp_path_factory):
    """The tiny training run, its EMA generator, and that generator exported as version 1."""
    run_dir, cfg = tiny_train_run
    generator, info = train_lib.load_generator_from_checkpoint(run_dir)
    base = str(tmp_path_factory.mktemp("evaluate_export") / "tiny")
    export_lib.export_generator(generator, base)
    return {"run_dir": run_dir, "cfg": cfg, "generator": generator, "info": info, "base": base}


# ----------------------------------------------------------------------------- image files


def test_load_generated_images_npz_and_folder(tmp_path, rng):
    floats = rng.uniform(-1, 1, (6, 8, 8, 3)).astype(np.float32)
    np.savez(tmp_path / "f.npz", images=floats)
    np.testing.assert_array_equal(evaluate_lib.load_generated_images(str(tmp_path / "f.npz")),
                                  floats)
    grey = rng.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", grey)
    loaded = evaluate_lib.load_generated_images(str(tmp_path / "g.npz"))
    assert loaded.shape == (4, 8, 8, 3) and loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded[..., 1], grey)
    one = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # One image, not 64 grey ones.
    np.savez(tmp_path / "one.npz", images=one)
    np.testing.assert_array_equal(evaluate_lib.load_generated_images(str(tmp_path / "one.npz")),
                                  one[None])
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        image = tf.constant(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        tf.io.write_file(str(folder / f"{i}.png"), tf.io.encode_png(image))
    assert evaluate_lib.load_generated_images(str(folder)).shape == (3, 8, 8, 3)
    (folder / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(errors.EvaluationError, match=r"3.png: cannot decode image"):
        evaluate_lib.load_generated_images(str(folder))


@pytest.mark.parametrize(
    "array, error, match",
    [
        (np.full((4, 8, 8, 3), 200.0, np.float32), errors.EvaluationError,
         r"float images must lie in \[-1, 1\], found values in \[200, 200\]"),
        (np.zeros((4, 8, 8, 5), np.float32), errors.EvaluationError,
         r"got shape \(4, 8, 8, 5\)"),
        (np.zeros((4, 8, 8, 3), np.int32), errors.EvaluationError, "got dtype int32"),
        (np.stack([np.zeros((8, 8, 3)), np.full((8, 8, 3), np.nan)]).astype(np.float32),
         errors.NonFiniteError, "bad.npz: 1 of 2 images hold NaN or Inf"),
    ],
)
def test_bad_generated_images(tmp_path, array, error, match):
    np.savez(tmp_path / "bad.npz", images=array)
    with pytest.raises(error, match=match):
        evaluate_lib.load_generated_images(str(tmp_path / "bad.npz"))


def test_missing_and_truncated_inputs(tmp_path):
    with pytest.raises(errors.EvaluationError, match="No such image file or folder"):
        evaluate_lib.load_generated_images(str(tmp_path / "none.npz"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(errors.EvaluationError, match="expected an .npz file or a folder"):
        evaluate_lib.load_generated_images(str(tmp_path / "a.txt"))
    np.savez(tmp_path / "good.npz", images=np.zeros((20, 8, 8, 3), np.uint8))
    whole = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(errors.EvaluationError, match=r"cut.npz: cannot read the .npz file "
                       r"\(BadZipFile: .*\); it is truncated"):
        evaluate_lib.load_generated_images(str(tmp_path / "cut.npz"))


def test_evaluate_images_scores_all_when_fewer_and_checks_statistics(digits, digits_cache,
                                                                     tmp_path):
    classifier, real = digits
    config = evaluate_lib.EvalConfig(num_images=1000, splits=5, batch_size=128,
                                     cache_dir=digits_cache, dataset="digits",
                                     real_num_images=300)
    report = evaluate_lib.evaluate_images(real, config, classifier=classifier)
    assert report["num_images"] == 300 and report["classifier"] == DIGITS_ID
    # 300 real digits scored against the statistics of the same 300: the same features, so
    # FID is 0 up to float error. IS measured 9.24 (splits of 60 images; at most 10).
    assert report["fid"] == pytest.approx(0.0, abs=1e-4)
    assert report["is_mean"] == pytest.approx(9.24, abs=0.15)
    assert report["real_stats"]["num_images"] == 300 and report["real_stats"]["resolution"] == 16

    other_id = str(tmp_path / "other.npz")
    metrics.save_statistics(other_id, metrics.Statistics(np.zeros(64), np.eye(64),
                                                         {"classifier_id": "inception/x"}))
    with pytest.raises(metrics.StatsError, match="computed with classifier 'inception/x'"):
        evaluate_lib.evaluate_images(real, dataclasses.replace(
            config, dataset=None, real_stats=other_id), classifier=classifier)
    other_size = str(tmp_path / "size.npz")
    metrics.save_statistics(other_size, metrics.Statistics(np.zeros(7), np.eye(7),
                                                           {"classifier_id": DIGITS_ID}))
    with pytest.raises(metrics.StatsError, match="size.npz have 7-d features, but the "
                       "classifier's pool_3 has 64"):
        evaluate_lib.evaluate_images(real, dataclasses.replace(
            config, dataset=None, real_stats=other_size), classifier=classifier)


def test_eval_config_validates_and_picks_the_classifier():
    assert evaluate_lib.EvalConfig(dataset="digits").classifier_spec == "digits"
    assert evaluate_lib.EvalConfig(dataset="cifar10").classifier_spec == "inception"
    assert evaluate_lib.EvalConfig().classifier_spec == "inception"
    assert evaluate_lib.EvalConfig(classifier="/m", dataset="digits").classifier_spec == "/m"
    with pytest.raises(errors.ConfigError, match="splits must be positive, got 0"):
        evaluate_lib.EvalConfig(splits=0)
    with pytest.raises(errors.ConfigError, match="real_stats or dataset for FID, not both"):
        evaluate_lib.EvalConfig(real_stats="s.npz", dataset="digits")


# ----------------------------------------------------------------------------- generators


def test_evaluate_generator_scores_the_seed_sequence(digits, digits_cache):
    classifier, real = digits
    seen = []
    pool = tf.constant(real.astype(np.float32) / 127.5 - 1.0)

    def generate(latent):  # Picks real digits by the first latent coordinate.
        seen.append(latent.numpy())
        index = tf.cast(tf.abs(latent[:, 0]) * 1000.0, tf.int32) % 300
        return tf.gather(pool, index)

    config = evaluate_lib.EvalConfig(num_images=120, splits=2, batch_size=50, seed=11,
                                     cache_dir=digits_cache)
    report = evaluate_lib.evaluate_generator(generate, 4, config, {"name": "picker"}, classifier)
    assert report["source"] == {"name": "picker"} and report["seed"] == 11
    assert report["num_images"] == 120 and report["fid"] is None
    assert [len(z) for z in seen] == [1, 50, 50, 20]  # A probe for the side, then the batches.
    for z, offset in zip(seen[1:], (0, 50, 100)):  # The batches of seed 11's sequence.
        np.testing.assert_array_equal(z, sampling.latents(11, offset, len(z), 4).numpy())
    assert report["is_mean"] == pytest.approx(9.27, abs=0.15)  # Measured: real digits.

    def diverged(latent):
        return tf.fill([tf.shape(latent)[0], 16, 16, 3], np.nan)

    with pytest.raises(errors.NonFiniteError, match=r"images 0..49\): 50 of 50 images hold NaN"):
        evaluate_lib.evaluate_generator(diverged, 4, config, classifier=classifier)


def test_checkpoint_and_its_saved_model_give_identical_reports(run_and_export, digits,
                                                               digits_cache):
    classifier, _ = digits
    config = evaluate_lib.EvalConfig(num_images=120, splits=2, batch_size=50, seed=5,
                                     dataset="digits", real_num_images=200,
                                     cache_dir=digits_cache)
    generator = run_and_export["generator"]
    from_checkpoint = evaluate_lib.evaluate_generator(
        evaluate_lib.model_generate_fn(generator), generator.latent_dim, config,
        classifier=classifier)
    exported = export_lib.load_exported_generator(run_and_export["base"])
    assert exported.model_dir == os.path.join(run_and_export["base"], "1")
    assert exported.latent_dim == run_and_export["cfg"].gan.latent_dim
    from_saved_model = evaluate_lib.evaluate_generator(
        exported.generate, exported.latent_dim, config, classifier=classifier)
    for key in ("is_mean", "is_std", "fid", "num_images"):
        assert from_saved_model[key] == from_checkpoint[key], key
    other_seed = evaluate_lib.evaluate_generator(
        exported.generate, exported.latent_dim, dataclasses.replace(config, seed=6),
        classifier=classifier)
    assert other_seed["is_mean"] != from_checkpoint["is_mean"]


def test_saved_model_export_base_uses_the_newest_version(tmp_path, digits, digits_cache):
    classifier, _ = digits
    base = tmp_path / "export" / "tiny"
    _export(base / "1", scale=0.1)
    _export(base / "10", scale=0.0)  # Constant images: one image, one class.
    _export(base / "2", scale=0.1)
    exported = export_lib.load_exported_generator(str(base))
    assert exported.model_dir == str(base / "10") and exported.latent_dim == 128
    config = evaluate_lib.EvalConfig(num_images=100, splits=2, batch_size=50,
                                     cache_dir=digits_cache)
    constant = evaluate_lib.evaluate_generator(exported.generate, 128, config,
                                               classifier=classifier)
    varied = evaluate_lib.evaluate_generator(
        export_lib.load_exported_generator(str(base / "2")).generate, 128, config,
        classifier=classifier)
    assert constant["is_mean"] == pytest.approx(1.0, abs=1e-6)
    assert varied["is_mean"] > 1.05


# ----------------------------------------------------------------------------- binary


def test_binary_on_an_npz_with_dataset_statistics(tmp_path, digits, digits_cache):
    """--images, --dataset (hence the digits classifier), --resolution, --real_num_images,
    --num_images, --batch_size, --splits, --cache_dir, --output, --noprogress."""
    classifier, real = digits
    np.savez(tmp_path / "samples.npz", images=real)
    output = tmp_path / "out" / "report.json"
    result = _run_binary(
        [f"--images={tmp_path / 'samples.npz'}", "--dataset=digits", "--resolution=16",
         "--real_num_images=500", "--num_images=200", "--batch_size=64", "--splits=4",
         f"--cache_dir={digits_cache}", f"--output={output}", "--noprogress"],
        str(tmp_path / "unused_cache"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert json.loads(result.stdout) == report
    assert not (tmp_path / "unused_cache").exists()  # --cache_dir was used instead.
    assert report["classifier"] == DIGITS_ID and report["num_images"] == 200
    assert report["splits"] == 4 and report["source"] == {
        "images": str(tmp_path / "samples.npz")}
    assert report["real_stats"]["dataset"] == "digits"
    assert report["real_stats"]["resolution"] == 16
    assert report["real_stats"]["num_images"] == 500
    assert {"load_classifier_s", "real_stats_s", "generate_and_classify_s", "total_s"} <= set(
        report["timings"])
    expected = evaluate_lib.evaluate_images(real, evaluate_lib.EvalConfig(
        num_images=200, splits=4, batch_size=64, dataset="digits", real_num_images=500,
        cache_dir=digits_cache), classifier=classifier)
    assert report["is_mean"] == pytest.approx(expected["is_mean"], rel=1e-6)
    assert report["fid"] == pytest.approx(expected["fid"], rel=1e-6)


def test_binary_on_a_training_run(tmp_path, run_and_export, digits, digits_cache):
    """--checkpoint and --seed; the run's dataset (digits) picks the classifier; --progress."""
    classifier, _ = digits
    output = tmp_path / "report.json"
    result = _run_binary(
        [f"--checkpoint={run_and_export['run_dir']}", "--num_images=120", "--batch_size=50",
         "--splits=2", "--seed=5", f"--output={output}", "--progress"],
        digits_cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "120/120" in result.stdout  # The progress bar.
    report = json.loads(output.read_text())
    assert report["classifier"] == DIGITS_ID
    assert report["source"]["checkpoint"] == dict(run_and_export["info"],
                                                  path=run_and_export["run_dir"])
    assert report["seed"] == 5 and report["fid"] is None
    generator = run_and_export["generator"]
    expected = evaluate_lib.evaluate_generator(
        evaluate_lib.model_generate_fn(generator), generator.latent_dim,
        evaluate_lib.EvalConfig(num_images=120, splits=2, batch_size=50, seed=5),
        classifier=classifier)
    assert report["is_mean"] == pytest.approx(expected["is_mean"], rel=1e-6)


def test_binary_on_a_saved_model_with_a_classifier_path_and_stats_file(
        tmp_path, run_and_export, digits, digits_cache):
    """--saved_model (an export base), --classifier (a local SavedModel), --real_stats."""
    classifier, _ = digits
    stats = metrics.real_statistics("digits", 16, classifier, cache_dir=digits_cache,
                                    num_images=200)
    stats_path = str(tmp_path / "stats.npz")
    metrics.save_statistics(stats_path, stats)
    from autogan_tf.eval import digits_classifier
    classifier_path = digits_classifier.digits_classifier_path(digits_cache)
    output = tmp_path / "report.json"
    result = _run_binary(
        [f"--saved_model={run_and_export['base']}", f"--classifier={classifier_path}",
         f"--real_stats={stats_path}", "--num_images=120", "--batch_size=50", "--splits=2",
         "--seed=5", f"--output={output}", "--noprogress"],
        digits_cache,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["source"] == {"saved_model": os.path.join(run_and_export["base"], "1")}
    assert report["real_stats"]["path"] == stats_path and report["classifier"] == DIGITS_ID
    generator = run_and_export["generator"]
    expected = evaluate_lib.evaluate_generator(   # The checkpoint's generator, in memory.
        evaluate_lib.model_generate_fn(generator), generator.latent_dim,
        evaluate_lib.EvalConfig(num_images=120, splits=2, batch_size=50, seed=5,
                                real_stats=stats_path), classifier=classifier)
    assert report["is_mean"] == pytest.approx(expected["is_mean"], rel=1e-6)
    assert report["fid"] == pytest.approx(expected["fid"], rel=1e-6)


def test_binary_writes_real_statistics_to_the_cache_and_a_file(tmp_path, digits, digits_cache):
    """--write_stats with --dataset, --resolution, --real_num_images, --cache_dir."""
    classifier, _ = digits
    cached = metrics.statistics_path(digits_cache, "digits", 8, DIGITS_ID, 123)
    if os.path.exists(cached):
        os.remove(cached)
    out = tmp_path / "stats" / "digits_8.npz"
    result = _run_binary([f"--write_stats={out}", "--dataset=digits", "--resolution=8",
                          "--real_num_images=123", f"--cache_dir={digits_cache}",
                          "--noprogress"], str(tmp_path / "unused_cache"))
    assert result.returncode == 0, result.stderr[-3000:]
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["path"] == str(out) and line["cache_file"] == cached
    assert (line["dataset"], line["resolution"], line["num_images"], line["classifier"]) == (
        "digits", 8, 123, DIGITS_ID)
    written = metrics.load_statistics(str(out), DIGITS_ID)
    from_cache = metrics.load_statistics(cached, DIGITS_ID)
    np.testing.assert_array_equal(written.mu, from_cache.mu)
    images = data.load_images("digits", 8, max_images=123)
    expected = metrics.compute_statistics(metrics.compute_activations(classifier, images)["pool_3"])
    np.testing.assert_allclose(written.mu, expected.mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(written.sigma, expected.sigma, rtol=1e-4, atol=1e-6)
    # A training or an evaluation with the same cache finds them instead of computing them.
    assert metrics.real_statistics("digits", 8, classifier, cache_dir=digits_cache,
                                   num_images=123).metadata == from_cache.metadata
    for args, message in (([f"--images={out}"], "scores no images: give it without --images"),
                          ([], "--write_stats needs --dataset")):
        bad = _run_binary([f"--write_stats={tmp_path / 'x.npz'}", *args], digits_cache)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-2000:]


@pytest.mark.parametrize("case", ["truncated_npz", "nan_npz", "bogus_checkpoint",
                                  "missing_tfds_data_dir", "inception_by_default"])
def test_binary_errors_are_one_line(tmp_path, digits_cache, case):
    images = np.zeros((20, 16, 16, 3), np.float32)
    env = {}
    if case == "truncated_npz":
        np.savez(tmp_path / "x.npz", images=images)
        whole = (tmp_path / "x.npz").read_bytes()
        (tmp_path / "x.npz").write_bytes(whole[: len(whole) // 2])
        args = [f"--images={tmp_path / 'x.npz'}", "--classifier=digits"]
        message = f"{tmp_path / 'x.npz'}: cannot read the .npz file (BadZipFile"
    elif case == "nan_npz":
        images[3:5] = np.nan
        np.savez(tmp_path / "x.npz", images=images)
        args = [f"--images={tmp_path / 'x.npz'}", "--classifier=digits"]
        message = f"{tmp_path / 'x.npz'}: 2 of 20 images hold NaN or Inf"
    elif case == "bogus_checkpoint":
        args = [f"--checkpoint={tmp_path / 'no_run'}"]
        message = f"{tmp_path / 'no_run'} is neither a training run directory"
    elif case == "missing_tfds_data_dir":
        np.savez(tmp_path / "x.npz", images=images)
        args = [f"--images={tmp_path / 'x.npz'}", "--classifier=digits", "--dataset=cifar10",
                f"--data_dir={tmp_path / 'tfds'}"]
        message = f"Dataset 'cifar10' (TFDS 'cifar10', split 'train') was not found in " \
                  f"{tmp_path / 'tfds'}"
    else:  # No --classifier and no digits dataset: Inception, unreachable here by design.
        np.savez(tmp_path / "x.npz", images=images)
        args = [f"--images={tmp_path / 'x.npz'}"]
        env = {"https_proxy": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
               "TFHUB_CACHE_DIR": str(tmp_path / "hub")}
        message = "Cannot load the classifier from https://tfhub.dev/tensorflow/tfgan/eval/"
    result = _run_binary([*args, "--noprogress"], digits_cache, **env)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"evaluate: error: {message}" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "is_mean" not in result.stdout  # No report.
