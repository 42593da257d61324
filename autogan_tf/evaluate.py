r"""Scores generated images by Inception score and FID and writes a JSON report.

The images come from an ``.npz`` or an image folder (``--images``), from a generator
SavedModel (``--saved_model``: a directory whose ``serving_default`` signature maps ``latent``
float32 [N, 128] to images float32 in [-1, 1], or an export base ``export/<name>`` whose
highest numbered version is used) or from a training run (``--checkpoint``: a run directory of
``python -m autogan_tf.train``, whose best-by-FID EMA generator is used, else its latest
checkpoint; or a checkpoint prefix inside one). FID needs real statistics: ``--real_stats`` (an
``.npz``) or ``--dataset`` (with ``--resolution`` and ``--data_dir``), whose statistics are
computed once and cached.

Example::

    python -m autogan_tf.evaluate --saved_model=export/autogan_cifar10_a \
        --classifier=/models/tfgan_inception --dataset=cifar10 --data_dir=/data/tfds \
        --num_images=50000 --output=report.json

    python -m autogan_tf.evaluate --images=samples.npz --classifier=digits --dataset=digits

    python -m autogan_tf.evaluate --checkpoint=runs/digits/train --classifier=digits \
        --dataset=digits --num_images=10000

The report holds ``is_mean``, ``is_std``, ``fid`` (null without real statistics),
``num_images``, ``classifier``, ``source``, ``real_stats``, ``seed`` and ``timings`` in seconds.
It is printed and, with ``--output``, written to that file. Wrong inputs end the program with a
message and a nonzero exit status.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from autogan_tf import data, errors
from autogan_tf.eval import metrics

__all__ = [
    "EvaluationError",
    "load_generated_images",
    "resolve_saved_model_dir",
    "saved_model_sampler",
    "checkpoint_sampler",
    "resolve_real_stats",
    "evaluate_sample_fn",
    "evaluate_images",
    "evaluate_saved_model",
    "evaluate_checkpoint",
    "main",
]

_RANGE_TOLERANCE = 1e-3


from autogan_tf.errors import EvaluationError  # noqa: E402  (re-exported)


# ----------------------------------------------------------------------------- inputs


def _validate_images(images: np.ndarray, source: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise EvaluationError(
            f"{source}: expected images [N, H, W, 3] (or 1 channel), got shape {images.shape}."
        )
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise EvaluationError(
            f"{source}: expected uint8 images or float images in [-1, 1], got {images.dtype}."
        )
    low, high = float(images.min()), float(images.max())
    if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
        raise EvaluationError(
            f"{source}: float images must lie in [-1, 1], found values in [{low:.4g}, {high:.4g}]."
        )
    return images.astype(np.float32)


def load_generated_images(path: str) -> np.ndarray:
    """Loads generated images from an ``.npz`` or an image folder.

    An ``.npz`` holds them under key ``images`` (or as its first array), as uint8 in 0..255 or
    float in [-1, 1], shaped [N, H, W, 3], [N, H, W, 1] or [N, H, W]. A folder's png/jpg files are
    read in sorted order and resized to the size of the first one.

    Args:
        path: The ``.npz`` file or the folder.

    Returns:
        uint8 or float32 images [N, H, W, 3].

    Raises:
        EvaluationError: If the path is missing or the images are malformed.
    """
    if os.path.isdir(path):
        try:
            name = f"folder:{path}"
            return data.load_images(name, data.default_resolution(name))
        except data.DatasetError as err:
            raise EvaluationError(str(err)) from err
    if not os.path.isfile(path):
        raise EvaluationError(f"No such image file or folder: {path}")
    if not path.lower().endswith(".npz"):
        raise EvaluationError(f"{path}: expected an .npz file or a folder of png/jpg images.")
    try:
        images = data.read_npz_array(path)
    except data.DatasetError as err:
        raise EvaluationError(str(err)) from err
    return _validate_images(images, path)


def resolve_saved_model_dir(path: str) -> str:
    """Returns the SavedModel directory for ``path``.

    ``path`` is either a SavedModel directory or an export base holding numbered versions
    (``export/<name>/<version>/``), in which case the highest version is chosen.

    Raises:
        EvaluationError: If no SavedModel is found.
    """
    if not os.path.isdir(path):
        raise EvaluationError(f"No such SavedModel directory: {path}")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = [
        int(entry)
        for entry in os.listdir(path)
        if entry.isdigit() and os.path.isfile(os.path.join(path, entry, "saved_model.pb"))
    ]
    if not versions:
        raise EvaluationError(
            f"{path}: neither a SavedModel (no saved_model.pb) nor an export base with numbered "
            "version directories."
        )
    return os.path.join(path, str(max(versions)))


def saved_model_sampler(path: str, seed: int = 0) -> Callable[[int], tf.Tensor]:
    """Returns ``sample_fn(n)`` drawing n images from a generator SavedModel.

    Latents are N(0, 1) from a numpy generator seeded with ``seed``, so the same seed gives the
    same images. The ``serving_default`` signature takes one float32 [N, latent_dim] input
    (normally named ``latent``) and returns the images (the ``images`` output, or the only one).

    Args:
        path: A SavedModel directory or an export base (see :func:`resolve_saved_model_dir`).
        seed: Latent seed.

    Returns:
        The sample function.

    Raises:
        EvaluationError: If the SavedModel lacks a usable ``serving_default`` signature.
    """
    model_dir = resolve_saved_model_dir(path)
    try:
        loaded = tf.saved_model.load(model_dir)
    except Exception as err:  # pylint: disable=broad-except
        raise EvaluationError(f"{model_dir}: cannot load the SavedModel ({err}).") from err
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise EvaluationError(f"{model_dir}: the SavedModel has no 'serving_default' signature.")
    _, inputs = signature.structured_input_signature
    if "latent" in inputs:
        input_name = "latent"
    elif len(inputs) == 1:
        (input_name,) = inputs
    else:
        raise EvaluationError(
            f"{model_dir}: 'serving_default' must take one input 'latent', takes {sorted(inputs)}."
        )
    spec = inputs[input_name]
    if spec.shape.rank != 2 or spec.shape[1] is None or not spec.dtype.is_floating:
        raise EvaluationError(
            f"{model_dir}: input {input_name!r} must be float [N, latent_dim], got {spec}."
        )
    latent_dim = int(spec.shape[1])
    rng = np.random.default_rng(seed)

    def sample_fn(n: int) -> tf.Tensor:
        latent = rng.standard_normal((n, latent_dim)).astype(spec.dtype.as_numpy_dtype)
        outputs = signature(**{input_name: tf.constant(latent)})
        if "images" in outputs:
            return outputs["images"]
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        raise EvaluationError(
            f"{model_dir}: 'serving_default' must return 'images' (or one output), returns "
            f"{sorted(outputs)}."
        )

    def image_shape() -> tuple[int, ...]:
        probe = tf.zeros([1, latent_dim], spec.dtype)
        outputs = signature(**{input_name: probe})
        images = outputs["images"] if "images" in outputs else next(iter(outputs.values()))
        return tuple(int(d) for d in images.shape[1:])

    sample_fn.loaded_model = loaded  # Keeps the restored functions alive.
    sample_fn.image_shape = image_shape  # [H, W, C] of one image; does not advance the seed.
    return sample_fn


def checkpoint_sampler(
    path: str, seed: int = 0, batch_size: int = metrics.DEFAULT_BATCH_SIZE
) -> Callable[[int], tf.Tensor]:
    """Returns ``sample_fn(n)`` drawing n images from the EMA generator of a training run.

    The generator comes from :func:`autogan_tf.train_lib.load_generator_from_checkpoint`. The
    latents of images ``i .. i + n - 1`` (counting from the first image drawn) are
    ``tf.random.stateless_normal([n, latent_dim], seed=[seed, i])``, so the same seed and the
    same call sizes give the same images. Calls of more than ``batch_size`` images are split
    into batches of at most that many, each run through one ``tf.function``.

    Args:
        path: A training run directory or a checkpoint prefix inside one.
        seed: Latent seed.
        batch_size: Most images per generator call.

    Returns:
        The sample function, returning float32 [n, R, R, 3] in [-1, 1]. It carries
        ``generator``, ``info`` (from the loader: ``run_dir``, ``checkpoint``, ``kind``,
        ``arch``) and ``image_shape()`` ([H, W, C] of one image; does not advance the latents).

    Raises:
        EvaluationError: If the checkpoint is missing, corrupt or does not match its run's
            configuration.
    """
    from autogan_tf.training import train_lib  # pylint: disable=import-outside-toplevel

    if batch_size < 1:
        raise EvaluationError(f"batch_size must be positive, got {batch_size}.")
    try:
        generator, info = train_lib.load_generator_from_checkpoint(path)
    except train_lib.CheckpointError as err:
        raise EvaluationError(str(err)) from err
    except (KeyError, TypeError) as err:  # A config.json that TrainConfig cannot take.
        raise EvaluationError(f"{path}: cannot read the training configuration ({err}).") from err
    latent_dim = int(generator.latent_dim)

    @tf.function(
        input_signature=[tf.TensorSpec([2], tf.int64), tf.TensorSpec([], tf.int32)],
        autograph=False,
    )
    def generate(key, n):
        latent = tf.random.stateless_normal(tf.stack([n, latent_dim]), seed=key)
        return tf.cast(generator(latent, training=False), tf.float32)

    position = 0

    def sample_fn(n: int) -> tf.Tensor:
        nonlocal position
        if n < 1:
            raise EvaluationError(f"Asked for {n} images; ask for at least one.")
        batches = []
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            key = tf.constant([seed, position], tf.int64)
            batches.append(generate(key, tf.constant(size, tf.int32)))
            position += size
        return batches[0] if len(batches) == 1 else tf.concat(batches, axis=0)

    def image_shape() -> tuple[int, ...]:
        probe = generate(tf.constant([seed, 0], tf.int64), tf.constant(1, tf.int32))
        return tuple(int(d) for d in probe.shape[1:])

    sample_fn.generator = generator
    sample_fn.info = info
    sample_fn.image_shape = image_shape
    return sample_fn


def resolve_real_stats(
    classifier: metrics.Classifier,
    real_stats: str | None = None,
    dataset: str | None = None,
    resolution: int | None = None,
    data_dir: str | None = None,
    cache_dir: str | None = None,
    num_images: int | None = None,
    batch_size: int = metrics.DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> metrics.Statistics | None:
    """Returns the real statistics from a file, or computes (cached) ones for a dataset.

    Args:
        classifier: The classifier the generated images are scored with.
        real_stats: Path of a statistics ``.npz``; takes precedence over ``dataset``.
        dataset: Dataset name for :func:`autogan_tf.metrics.real_statistics`.
        resolution: Image side for the dataset statistics (default: the dataset's default).
        data_dir: TFDS data directory.
        cache_dir: Statistics cache root.
        num_images: Real images to use (all when None).
        batch_size: Images per classifier call.
        progress: Show a progress bar.

    Returns:
        The statistics, or None when neither ``real_stats`` nor ``dataset`` is given.
    """
    if real_stats:
        return metrics.load_statistics(real_stats, classifier.classifier_id)
    if not dataset:
        return None
    resolution = resolution or data.default_resolution(dataset)
    return metrics.real_statistics(
        dataset,
        resolution,
        classifier,
        cache_dir=cache_dir,
        num_images=num_images,
        data_dir=data_dir,
        batch_size=batch_size,
        progress=progress,
    )


# ----------------------------------------------------------------------------- evaluation


def evaluate_sample_fn(
    sample_fn: Callable[[int], Any],
    num_images: int,
    classifier: metrics.Classifier | str,
    real_stats: Any = None,
    splits: int = 10,
    batch_size: int = metrics.DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores ``num_images`` images from ``sample_fn`` and returns a report.

    This is the common path of every image source (files, SavedModels, checkpoints).

    Args:
        sample_fn: ``sample_fn(n)`` returns n images, float in [-1, 1] or uint8.
        num_images: Images to score.
        classifier: A :class:`autogan_tf.metrics.Classifier` or a spec.
        real_stats: Real statistics (anything :func:`autogan_tf.metrics.frechet_distance`
            accepts, or an .npz path) or None.
        splits: IS splits.
        batch_size: Images per call.
        progress: Show a progress bar.

    Returns:
        ``{'is_mean', 'is_std', 'fid', 'num_images', 'classifier', 'timings'}``.
    """
    classifier = metrics.load_classifier(classifier)
    if real_stats is not None:
        real_stats = metrics.resolve_statistics(real_stats, classifier.classifier_id)
    start = time.perf_counter()
    outputs = metrics.compute_activations(
        classifier, sample_fn, num_images, batch_size=batch_size, progress=progress
    )
    scored = time.perf_counter()
    report = metrics.scores_from_activations(outputs, real_stats, splits)
    report["classifier"] = classifier.classifier_id
    report["timings"] = {
        "generate_and_classify_s": scored - start,
        "scores_s": time.perf_counter() - scored,
    }
    return report


def evaluate_images(
    images: np.ndarray,
    classifier: metrics.Classifier | str,
    real_stats: Any = None,
    num_images: int | None = None,
    splits: int = 10,
    batch_size: int = metrics.DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores an array of generated images.

    Args:
        images: [N, H, W, 3] uint8, or float in [-1, 1].
        classifier: A :class:`autogan_tf.metrics.Classifier` or a spec.
        real_stats: Real statistics or None (see :func:`evaluate_sample_fn`).
        num_images: Score the first this many (all when None).
        splits: IS splits.
        batch_size: Images per call.
        progress: Show a progress bar.

    Returns:
        The report of :func:`evaluate_sample_fn`.

    Raises:
        EvaluationError: If the images are malformed or fewer than ``num_images``.
    """
    images = _validate_images(np.asarray(images), "images")
    num_images = len(images) if num_images is None else num_images
    if num_images > len(images):
        raise EvaluationError(f"Asked for {num_images} images, only {len(images)} are available.")
    position = 0

    def sample_fn(n: int) -> np.ndarray:
        nonlocal position
        batch = images[position : position + n]
        position += n
        return batch

    return evaluate_sample_fn(
        sample_fn, num_images, classifier, real_stats, splits, batch_size, progress
    )


def evaluate_saved_model(
    path: str,
    num_images: int,
    classifier: metrics.Classifier | str,
    real_stats: Any = None,
    seed: int = 0,
    splits: int = 10,
    batch_size: int = metrics.DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores images generated by a generator SavedModel (see :func:`saved_model_sampler`).

    Args:
        path: SavedModel directory or export base.
        num_images: Images to generate and score.
        classifier: A :class:`autogan_tf.metrics.Classifier` or a spec.
        real_stats: Real statistics or None.
        seed: Latent seed.
        splits: IS splits.
        batch_size: Images per call.
        progress: Show a progress bar.

    Returns:
        The report of :func:`evaluate_sample_fn`, plus ``saved_model`` (the version used).
    """
    sample_fn = saved_model_sampler(path, seed)
    report = evaluate_sample_fn(
        sample_fn, num_images, classifier, real_stats, splits, batch_size, progress
    )
    report["saved_model"] = resolve_saved_model_dir(path)
    return report


def evaluate_checkpoint(
    path: str,
    num_images: int,
    classifier: metrics.Classifier | str,
    real_stats: Any = None,
    seed: int = 0,
    splits: int = 10,
    batch_size: int = metrics.DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores images generated by the EMA generator of a training run.

    Args:
        path: A training run directory or a checkpoint prefix (see :func:`checkpoint_sampler`).
        num_images: Images to generate and score.
        classifier: A :class:`autogan_tf.metrics.Classifier` or a spec.
        real_stats: Real statistics or None.
        seed: Latent seed.
        splits: IS splits.
        batch_size: Images per call.
        progress: Show a progress bar.

    Returns:
        The report of :func:`evaluate_sample_fn`, plus ``checkpoint`` (the loader's ``info``:
        the run directory, the checkpoint prefix used, its kind and the architecture).

    Raises:
        EvaluationError: If the checkpoint cannot be loaded.
    """
    sample_fn = checkpoint_sampler(path, seed, batch_size)
    report = evaluate_sample_fn(
        sample_fn, num_images, classifier, real_stats, splits, batch_size, progress
    )
    report["checkpoint"] = dict(sample_fn.info)
    return report


# ----------------------------------------------------------------------------- binary


def _define_flags() -> None:
    from absl import flags  # pylint: disable=import-outside-toplevel

    flags.DEFINE_string("images", None, "An .npz of generated images or a folder of png/jpg.")
    flags.DEFINE_string(
        "saved_model", None, "Generator SavedModel dir, or export/<name> (highest version)."
    )
    flags.DEFINE_string(
        "checkpoint", None, "Training run directory or checkpoint prefix (its EMA generator)."
    )
    flags.DEFINE_integer("num_images", 50000, "Images to score.")
    flags.DEFINE_integer("batch_size", metrics.DEFAULT_BATCH_SIZE, "Images per classifier call.")
    flags.DEFINE_string(
        "classifier", "inception", "'inception', 'digits', a TF-Hub URL or a local SavedModel."
    )
    flags.DEFINE_string("real_stats", None, "An .npz of real statistics (mu, sigma).")
    flags.DEFINE_string("dataset", None, "Dataset whose real statistics are computed and cached.")
    flags.DEFINE_integer("resolution", None, "Resolution for --dataset (default: images' size).")
    flags.DEFINE_string("data_dir", None, "TFDS data directory for --dataset.")
    flags.DEFINE_integer("real_num_images", None, "Real images for statistics (default: all).")
    flags.DEFINE_string("cache_dir", None, "Cache for classifiers and statistics.")
    flags.DEFINE_integer("splits", 10, "Inception score splits.")
    flags.DEFINE_integer("seed", 0, "Latent seed for --saved_model and --checkpoint.")
    flags.DEFINE_string("output", None, "Write the JSON report here.")
    flags.DEFINE_bool("progress", True, "Show progress bars.")


def _run(argv: list[str]) -> None:
    from absl import app, flags, logging  # pylint: disable=import-outside-toplevel

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS  # pylint: disable=invalid-name
    sources = [name for name in ("images", "saved_model", "checkpoint") if getattr(FLAGS, name)]
    if len(sources) != 1:
        raise app.UsageError("Give exactly one of --images, --saved_model or --checkpoint.")
    if FLAGS.real_stats and FLAGS.dataset:
        raise app.UsageError("Give at most one of --real_stats and --dataset.")
    if FLAGS.num_images < 1 or FLAGS.batch_size < 1 or FLAGS.splits < 1:
        raise app.UsageError("--num_images, --batch_size and --splits must be positive.")

    start = time.perf_counter()
    timings: dict[str, float] = {}
    classifier = metrics.load_classifier(FLAGS.classifier, FLAGS.cache_dir)
    timings["load_classifier_s"] = time.perf_counter() - start

    # Image sources. Each branch sets `side` (the images' side, for --dataset statistics),
    # `source` (for the report) and `run_scores(stats) -> report`; a further source adds its
    # flag to `_define_flags`, its name to `sources` above and a branch here that builds a
    # sample function and calls `evaluate_sample_fn`.
    if FLAGS.images:
        images = load_generated_images(FLAGS.images)
        num_images = FLAGS.num_images
        if len(images) < num_images:
            logging.warning(
                "%s holds %d images, fewer than --num_images=%d; scoring all of them.",
                FLAGS.images, len(images), num_images,
            )
            num_images = len(images)
        side = int(images.shape[1])
        source = {"images": os.path.abspath(FLAGS.images)}
        run_scores = lambda stats: evaluate_images(  # noqa: E731
            images, classifier, stats, num_images, FLAGS.splits, FLAGS.batch_size, FLAGS.progress
        )
    elif FLAGS.checkpoint:
        sample_fn = checkpoint_sampler(FLAGS.checkpoint, FLAGS.seed, FLAGS.batch_size)
        side = sample_fn.image_shape()[0]
        source = {"checkpoint": dict(sample_fn.info, path=os.path.abspath(FLAGS.checkpoint))}
        run_scores = lambda stats: evaluate_sample_fn(  # noqa: E731
            sample_fn, FLAGS.num_images, classifier, stats, FLAGS.splits, FLAGS.batch_size,
            FLAGS.progress,
        )
    else:
        model_dir = resolve_saved_model_dir(FLAGS.saved_model)
        sample_fn = saved_model_sampler(model_dir, FLAGS.seed)
        side = sample_fn.image_shape()[0]
        source = {"saved_model": os.path.abspath(model_dir)}
        run_scores = lambda stats: evaluate_sample_fn(  # noqa: E731
            sample_fn, FLAGS.num_images, classifier, stats, FLAGS.splits, FLAGS.batch_size,
            FLAGS.progress,
        )

    stats_start = time.perf_counter()
    stats = resolve_real_stats(
        classifier,
        real_stats=FLAGS.real_stats,
        dataset=FLAGS.dataset,
        resolution=FLAGS.resolution or side,
        data_dir=FLAGS.data_dir,
        cache_dir=FLAGS.cache_dir,
        num_images=FLAGS.real_num_images,
        batch_size=FLAGS.batch_size,
        progress=FLAGS.progress,
    )
    timings["real_stats_s"] = time.perf_counter() - stats_start

    report = run_scores(stats)
    timings.update(report.pop("timings"))
    timings["total_s"] = time.perf_counter() - start
    report.update(
        source=source,
        real_stats=None if stats is None else dict(stats.metadata, path=FLAGS.real_stats),
        seed=FLAGS.seed,
        splits=FLAGS.splits,
        timings=timings,
    )
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if FLAGS.output:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
        with open(FLAGS.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")


def main(argv: list[str]) -> None:
    """Runs the evaluation; input errors end the program with a message and exit status 1."""
    from autogan_tf.data import DatasetError  # pylint: disable=import-outside-toplevel

    try:
        _run(argv)
    except (
        EvaluationError,
        DatasetError,
        metrics.ClassifierError,
        metrics.StatsError,
        ValueError,
    ) as err:
        if isinstance(err, errors.AutoGANError):
            raise
        raise EvaluationError(str(err)) from err


if __name__ == "__main__":
    from autogan_tf.cli import runner

    _define_flags()
    runner.run(main, "evaluate")
