r"""Scores generated images by Inception score and FID and writes a JSON report.

    python -m autogan_tf.evaluate --checkpoint=runs/digits/train --dataset=digits \
        --num_images=10000 --output=report.json
    python -m autogan_tf.evaluate --saved_model=export/autogan_cifar10_a \
        --classifier=/models/tfgan_inception --dataset=cifar10 --data_dir=/data/tfds \
        --num_images=50000 --output=report.json
    python -m autogan_tf.evaluate --images=samples.npz --dataset=digits
    python -m autogan_tf.evaluate --write_stats=stats/cifar10_32.npz --dataset=cifar10 \
        --resolution=32 --classifier=/models/tfgan_inception --data_dir=/data/tfds \
        --cache_dir=/data/autogan_cache

One image source:

* ``--checkpoint``: a run directory of ``python -m autogan_tf.train`` (its best-by-FID EMA
  generator, else its latest checkpoint) or a checkpoint prefix inside one;
* ``--saved_model``: a generator SavedModel (``serving_default``: ``latent`` float32
  [N, latent_dim] -> ``images`` in [-1, 1]) or an export base ``export/<name>``, whose newest
  version is used;
* ``--images``: an ``.npz`` (key ``images`` or its first array; uint8, or float in [-1, 1];
  [N, H, W, 3], [N, H, W, 1], one image [H, W, 3] or grey [N, H, W]) or a folder of png/jpg.

A generator is scored on the latent sequence of ``--seed``, drawn ``--batch_size`` at a time
(the sampler of training evaluations; its first batch is what the exported ``generate``
signature serves for that seed), so a checkpoint and its export give the same report for the
same ``--seed`` and ``--batch_size``.
FID needs real statistics: ``--real_stats`` (an ``.npz``) or ``--dataset`` (with
``--resolution``, ``--data_dir`` and ``--real_num_images``), computed once and cached under
``--cache_dir``. ``--classifier`` defaults to ``digits`` for the digits dataset (given by
``--dataset``, or the ``--checkpoint`` run's dataset), else ``inception``.

``--write_stats=<file.npz>`` scores no images: it precomputes the real statistics of
``--dataset`` at ``--resolution`` (default: the dataset's own) over ``--real_num_images``
(default: all) with ``--classifier``, caches them under ``--cache_dir`` where training, search
rewards and evaluations with the same ``--cache_dir`` find them, writes a copy to the file
(for ``--real_stats``) and prints a JSON line describing them.

The report (``is_mean``, ``is_std``, ``fid`` (null without real statistics), ``num_images``,
``classifier``, ``source``, ``real_stats``, ``seed``, ``splits``, ``timings`` in seconds) is
printed and, with ``--output``, written to that file. Wrong inputs, and images with NaN or Inf,
end the program with a one-line message and exit status 1.
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf.cli import runner  # noqa: E402

__all__ = ["main"]

IMAGES = flags.DEFINE_string("images", None, "An .npz of generated images or a folder of png/jpg.")
SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Generator SavedModel directory, or an "
                                  "export base export/<name> (its newest version).")
CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Training run directory or checkpoint "
                                 "prefix (its EMA generator).")
NUM_IMAGES = flags.DEFINE_integer("num_images", 50_000, "Images to score.", lower_bound=1)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 100, "Images per generator and classifier call.",
                                  lower_bound=1)
CLASSIFIER = flags.DEFINE_string("classifier", None, "'inception', 'digits', a TF-Hub URL or a "
                                 "local SavedModel; default: digits for the digits dataset, else "
                                 "inception.")
REAL_STATS = flags.DEFINE_string("real_stats", None, "An .npz of real statistics (mu, sigma).")
DATASET = flags.DEFINE_string("dataset", None, "Dataset whose real statistics are computed and "
                              "cached (cifar10, stl10, digits, a folder or an .npz).")
RESOLUTION = flags.DEFINE_integer("resolution", None, "Side for --dataset statistics (default: "
                                  "the scored images' side).", lower_bound=1)
DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory for --dataset.")
REAL_NUM_IMAGES = flags.DEFINE_integer("real_num_images", None, "Real images for the statistics "
                                       "(default: all).", lower_bound=1)
CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Cache for the digits classifier and real "
                                "statistics (default $AUTOGAN_TF_CACHE or ~/.cache/autogan_tf).")
SPLITS = flags.DEFINE_integer("splits", 10, "Inception score splits.", lower_bound=1)
SEED = flags.DEFINE_integer("seed", 0, "Latent sequence for --checkpoint and --saved_model.",
                            lower_bound=0)
OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON report to this file.")
WRITE_STATS = flags.DEFINE_string("write_stats", None, "Precompute the real statistics of "
                                  "--dataset (cached under --cache_dir) and write them to this "
                                  ".npz; scores no images.")
PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def _run_dataset(run_dir: str) -> str | None:
    """The dataset recorded in a training run's config.json (None if unreadable)."""
    try:
        with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
            return json.load(f).get("dataset")
    except (OSError, ValueError, AttributeError):
        return None


def _write_stats(sources):
    """--write_stats: the real statistics of --dataset, cached and written to a file."""
    if sources or REAL_STATS.value:
        raise app.UsageError("--write_stats computes statistics and scores no images: give it "
                             "without " + ", ".join(f"--{s}" for s in sources + (
                                 ["real_stats"] if REAL_STATS.value else [])))
    if not DATASET.value:
        raise app.UsageError("--write_stats needs --dataset (whose real images are scored)")
    if os.path.isdir(WRITE_STATS.value):
        raise app.UsageError(f"--write_stats={WRITE_STATS.value} is a directory; give a file "
                             "name")
    from autogan_tf.eval import evaluate_lib  # pylint: disable=import-outside-toplevel

    config = evaluate_lib.EvalConfig(
        classifier=CLASSIFIER.value, dataset=DATASET.value, resolution=RESOLUTION.value,
        data_dir=DATA_DIR.value, real_num_images=REAL_NUM_IMAGES.value,
        cache_dir=CACHE_DIR.value, batch_size=BATCH_SIZE.value, progress=PROGRESS.value)
    print(json.dumps(evaluate_lib.write_real_statistics(config, WRITE_STATS.value)))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    sources = [flag.name for flag in (IMAGES, SAVED_MODEL, CHECKPOINT) if flag.value]
    if WRITE_STATS.value:
        return _write_stats(sources)
    if len(sources) != 1:
        raise app.UsageError("give exactly one of --images, --saved_model or --checkpoint")
    if REAL_STATS.value and DATASET.value:
        raise app.UsageError("give at most one of --real_stats and --dataset")
    if OUTPUT.value and os.path.isdir(OUTPUT.value):
        raise app.UsageError(f"--output={OUTPUT.value} is a directory; give a file name")
    from autogan_tf.eval import evaluate_lib, metrics  # pylint: disable=import-outside-toplevel

    config = evaluate_lib.EvalConfig(
        num_images=NUM_IMAGES.value, classifier=CLASSIFIER.value, real_stats=REAL_STATS.value,
        dataset=DATASET.value, resolution=RESOLUTION.value, data_dir=DATA_DIR.value,
        real_num_images=REAL_NUM_IMAGES.value, cache_dir=CACHE_DIR.value, splits=SPLITS.value,
        batch_size=BATCH_SIZE.value, seed=SEED.value, progress=PROGRESS.value)
    if IMAGES.value:
        report = evaluate_lib.evaluate_images(IMAGES.value, config)
    elif CHECKPOINT.value:
        from autogan_tf.training import train_lib  # pylint: disable=import-outside-toplevel

        try:
            generator, info = train_lib.load_generator_from_checkpoint(CHECKPOINT.value)
        except (KeyError, TypeError) as err:  # a config.json TrainConfig cannot take
            raise evaluate_lib.EvaluationError(
                f"{CHECKPOINT.value}: cannot read the training configuration ({err}).") from err
        dataset = DATASET.value or info.get("dataset") or _run_dataset(info["run_dir"])
        config = dataclasses.replace(
            config, classifier=CLASSIFIER.value or metrics.default_classifier(dataset))
        report = evaluate_lib.evaluate_generator(
            evaluate_lib.model_generate_fn(generator), generator.latent_dim, config,
            source={"checkpoint": dict(info, path=os.path.abspath(CHECKPOINT.value))})
    else:
        from autogan_tf.serving import export_lib  # pylint: disable=import-outside-toplevel

        exported = export_lib.load_exported_generator(SAVED_MODEL.value)
        report = evaluate_lib.evaluate_generator(
            exported.generate, exported.latent_dim, config,
            source={"saved_model": os.path.abspath(exported.model_dir)})
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if OUTPUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(OUTPUT.value)), exist_ok=True)
        with open(OUTPUT.value, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    runner.run(main, "evaluate")
