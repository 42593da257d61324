"""Scores generated images by Inception score and FID into one report, whatever made them.

Two entry points share one path (classifier, real statistics, activations, scores, report):

* :func:`evaluate_generator` scores any generator given as ``generate(z)`` and its latent size.
  The latents are the sequence of ``config.seed`` drawn by :class:`autogan_tf.sampling.
  LatentSampler`, the sampler of search rewards, training evaluations and the exported
  ``generate`` signature, so a training checkpoint and its SavedModel give the same report.
* :func:`evaluate_images` scores stored images: an ``.npz`` or a folder of png/jpg.

Example::

    config = EvalConfig(num_images=10_000, dataset="digits")          # digits classifier
    generator, _ = train_lib.load_generator_from_checkpoint("runs/digits/train")
    report = evaluate_generator(model_generate_fn(generator), generator.latent_dim, config)
    report["is_mean"], report["fid"]

:func:`write_real_statistics` precomputes the real statistics FID needs (of a dataset at one
resolution, with one classifier): they land in the cache that training, search rewards and
evaluations read, and in a file for ``--real_stats``.

The report holds ``is_mean``, ``is_std``, ``fid`` (None without real statistics),
``num_images``, ``classifier``, ``source``, ``real_stats``, ``seed``, ``splits`` and ``timings``
in seconds.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow as tf
from absl import logging

from autogan_tf import data, sampling
from autogan_tf.errors import ConfigError, EvaluationError
from autogan_tf.eval import metrics
from autogan_tf.images import check_images

__all__ = [
    "EvaluationError",
    "EvalConfig",
    "load_generated_images",
    "model_generate_fn",
    "resolve_real_stats",
    "evaluate_generator",
    "evaluate_images",
    "write_real_statistics",
]


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to score and against what.

    Attributes:
        num_images: Images to score (stored images: at most this many).
        classifier: ``'inception'``, ``'digits'``, a TF-Hub URL or a local SavedModel; None picks
            :func:`autogan_tf.eval.metrics.default_classifier` of ``dataset``.
        real_stats: An ``.npz`` of real statistics for FID; excludes ``dataset``.
        dataset: A dataset whose real statistics are computed once and cached, for FID.
        resolution: Side for the ``dataset`` statistics (default: the scored images' side).
        data_dir: TFDS data directory for ``dataset``.
        real_num_images: Real images for the statistics (default: all).
        cache_dir: Cache for the digits classifier and real statistics.
        splits: Inception score splits.
        batch_size: Images per generator and classifier call.
        seed: The latent sequence a generator is scored on.
        progress: Show progress bars.
    """

    num_images: int = 50_000
    classifier: str | None = None
    real_stats: str | None = None
    dataset: str | None = None
    resolution: int | None = None
    data_dir: str | None = None
    real_num_images: int | None = None
    cache_dir: str | None = None
    splits: int = 10
    batch_size: int = metrics.DEFAULT_BATCH_SIZE
    seed: int = 0
    progress: bool = False

    def __post_init__(self):
        for name in ("num_images", "splits", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}.")
        for name in ("resolution", "real_num_images"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive or None, got {getattr(self, name)}.")
        if self.real_stats and self.dataset:
            raise ConfigError("Give real_stats or dataset for FID, not both.")

    @property
    def classifier_spec(self) -> str:
        """The classifier to load: ``classifier``, else the default for ``dataset``."""
        return self.classifier or metrics.default_classifier(self.dataset)


# ----------------------------------------------------------------------------- inputs


def load_generated_images(path: str) -> np.ndarray:
    """Loads generated images from an ``.npz`` or an image folder.

    An ``.npz`` holds them under key ``images`` (or as its first array), as uint8 in 0..255 or
    float in [-1, 1], laid out as :func:`autogan_tf.images.check_images` reads them ([N, H, W, 3],
    [N, H, W, 1], one image [H, W, 3], or grey [N, H, W]). A folder's png/jpg files are read in
    sorted order and resized to the size of the first one.

    Args:
        path: The ``.npz`` file or the folder.

    Returns:
        uint8 or float32 images [N, H, W, 3].

    Raises:
        EvaluationError: If the path is missing, unreadable, or the images are malformed.
        NonFiniteError: If float images hold NaN or Inf.
    """
    if os.path.isdir(path):
        name = f"folder:{path}"
        try:
            return data.load_images(name, data.default_resolution(name))
        except data.DatasetError as err:
            raise EvaluationError(str(err)) from err
    if not os.path.isfile(path):
        raise EvaluationError(f"No such image file or folder: {path}")
    if not path.lower().endswith(".npz"):
        raise EvaluationError(f"{path}: expected an .npz file or a folder of png/jpg images.")
    return check_images(data.read_npz_array(path, EvaluationError), path)


def model_generate_fn(model) -> Callable[[tf.Tensor], tf.Tensor]:
    """``generate(z)`` of a Keras generator: one traced call, float32 images, inference mode.

    Args:
        model: A built generator with ``latent_dim`` (e.g. ``DerivedGenerator``).

    Returns:
        A ``tf.function`` mapping float32 latents [n, latent_dim] to float32 images.
    """
    spec = tf.TensorSpec([None, int(model.latent_dim)], tf.float32)

    @tf.function(input_signature=[spec], autograph=False)
    def generate(latent):
        return tf.cast(model(latent, training=False), tf.float32)

    return generate


def resolve_real_stats(
    classifier: metrics.Classifier, config: EvalConfig, side: int | None = None
) -> metrics.Statistics | None:
    """The real statistics FID is computed against, or None when the config asks for none.

    Args:
        classifier: The classifier the images are scored with (statistics of another one are
            refused).
        config: ``real_stats`` (a file) or ``dataset`` (computed once and cached, at
            ``resolution``, else ``side``, else the dataset's default side).
        side: The side of the scored images.

    Returns:
        The statistics, or None.

    Raises:
        StatsError: For a missing or malformed file, or one made with another classifier.
        DatasetError: If the dataset cannot be read.
    """
    if config.real_stats:
        return metrics.load_statistics(config.real_stats, classifier.classifier_id)
    if not config.dataset:
        return None
    resolution = config.resolution or side or data.default_resolution(config.dataset)
    return metrics.real_statistics(
        config.dataset,
        resolution,
        classifier,
        cache_dir=config.cache_dir,
        num_images=config.real_num_images,
        data_dir=config.data_dir,
        batch_size=config.batch_size,
        progress=config.progress,
    )


# ----------------------------------------------------------------------------- evaluation


def evaluate_generator(
    generate: Callable[[tf.Tensor], Any],
    latent_dim: int,
    config: EvalConfig,
    source: Mapping[str, Any] | None = None,
    classifier: metrics.Classifier | None = None,
) -> dict[str, Any]:
    """Scores ``config.num_images`` images of a generator on the latents of ``config.seed``.

    This is the one path of every generator: a training checkpoint, an exported SavedModel or
    any callable. The latents are the batches of the sequence of ``config.seed``
    (:class:`autogan_tf.sampling.LatentSampler`: ``config.batch_size`` at a time, a batch at
    offset ``o`` keyed ``[seed, o]``), so the same generator, seed and batch size give the same
    report wherever the generator comes from; the first batch is what the exported
    ``generate(seed, n)`` signature serves.

    Args:
        generate: Maps float32 latents [n, latent_dim] to images [n, H, W, 3] in [-1, 1].
        latent_dim: The latent size.
        config: What to score against.
        source: Describes the generator in the report (e.g. ``{'checkpoint': {...}}``).
        classifier: An already-loaded classifier (else ``config.classifier_spec`` is loaded).

    Returns:
        The report (see the module docstring).

    Raises:
        EvaluationError: If the generated images have the wrong shape or range.
        NonFiniteError: If generated images hold NaN or Inf.
        ClassifierError, StatsError, DatasetError: For the classifier or real statistics.
    """
    latent_dim = int(latent_dim)
    probe = check_images(generate(tf.zeros([1, latent_dim], tf.float32)), "generator output",
                         check_values=False)
    sampler = sampling.LatentSampler(generate, latent_dim, config.seed, config.batch_size)
    return _score(sampler, config.num_images, int(probe.shape[1]), config, source, classifier)


def evaluate_images(
    images: np.ndarray | str,
    config: EvalConfig,
    source: Mapping[str, Any] | None = None,
    classifier: metrics.Classifier | None = None,
) -> dict[str, Any]:
    """Scores stored images: the first ``config.num_images`` of them (all, if fewer).

    Args:
        images: An ``.npz`` or folder path (see :func:`load_generated_images`), or an array
            (uint8, or float in [-1, 1]).
        config: What to score against (``seed`` is not used).
        source: Describes the images in the report (default: ``{'images': <absolute path>}``).
        classifier: An already-loaded classifier (else ``config.classifier_spec`` is loaded).

    Returns:
        The report (see the module docstring).

    Raises:
        EvaluationError: If the images are missing or malformed.
        NonFiniteError: If float images hold NaN or Inf.
    """
    if isinstance(images, (str, os.PathLike)):
        path = os.fspath(images)
        images = load_generated_images(path)
        source = source or {"images": os.path.abspath(path)}
    else:
        images = check_images(np.asarray(images), "images")
    num_images = config.num_images
    if len(images) < num_images:
        logging.warning("%s holds %d images, fewer than the %d asked for; scoring all of them.",
                        (source or {}).get("images", "the array"), len(images), num_images)
        num_images = len(images)
    return _score(images, num_images, int(images.shape[1]), config, source, classifier)


def _score(
    images_or_sampler: Any,
    num_images: int,
    side: int,
    config: EvalConfig,
    source: Mapping[str, Any] | None,
    classifier: metrics.Classifier | None,
) -> dict[str, Any]:
    """Classifier, real statistics, activations, scores: the report of both entry points."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    classifier, _, feature_dim = metrics.check_classifier(
        classifier or config.classifier_spec, side, config.cache_dir
    )
    timings["load_classifier_s"] = time.perf_counter() - start

    mark = time.perf_counter()
    stats = resolve_real_stats(classifier, config, side)
    if stats is not None:
        where = config.real_stats or f"real statistics of {config.dataset}"
        metrics.check_statistics(stats, feature_dim, where)
    timings["real_stats_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    outputs = metrics.compute_activations(
        classifier, images_or_sampler, num_images, config.batch_size, progress=config.progress
    )
    timings["generate_and_classify_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    report = metrics.scores_from_activations(outputs, stats, config.splits)
    timings["scores_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - start
    report.update(
        classifier=classifier.classifier_id,
        source=dict(source or {}),
        real_stats=None if stats is None else dict(stats.metadata, path=config.real_stats),
        seed=config.seed,
        splits=config.splits,
        timings=timings,
    )
    logging.info("IS %.4f +- %.4f, FID %s over %d images (%s)", report["is_mean"],
                 report["is_std"], report["fid"], report["num_images"], report["classifier"])
    return report


# ----------------------------------------------------------------------------- real statistics


def write_real_statistics(config: EvalConfig, path: str) -> dict[str, Any]:
    """Computes (or reads from the cache) the real statistics of ``config.dataset`` and writes
    them to ``path``.

    The statistics are those training and search rewards use: ``config.dataset`` at
    ``config.resolution`` (default: the dataset's own), the first ``config.real_num_images``
    images (default: all), ``config.classifier_spec``'s pool_3 features. They are cached under
    ``config.cache_dir`` as :func:`autogan_tf.eval.metrics.real_statistics` caches them (so
    runs with the same ``--cache_dir`` find them) and copied to ``path`` (for ``--real_stats``).

    Args:
        config: ``dataset`` (required), ``resolution``, ``data_dir``, ``real_num_images``,
            ``classifier``, ``cache_dir``, ``batch_size``, ``progress``.
        path: The ``.npz`` to write.

    Returns:
        ``{'path', 'cache_file', 'dataset', 'resolution', 'num_images', 'classifier',
        'feature_dim', 'seconds'}``.

    Raises:
        ConfigError: Without ``config.dataset``.
        DatasetError, ClassifierError: For the dataset or the classifier.
    """
    if not config.dataset:
        raise ConfigError("Real statistics need a dataset (--dataset).")
    start = time.perf_counter()
    resolution = config.resolution or data.default_resolution(config.dataset)
    data.check_dataset(config.dataset, resolution, config.data_dir)
    classifier, _, feature_dim = metrics.check_classifier(
        config.classifier_spec, resolution, config.cache_dir
    )
    stats = metrics.real_statistics(
        config.dataset, resolution, classifier, cache_dir=config.cache_dir,
        num_images=config.real_num_images, data_dir=config.data_dir,
        batch_size=config.batch_size, progress=config.progress,
    )
    metrics.check_statistics(stats, feature_dim, f"real statistics of {config.dataset}")
    metrics.save_statistics(path, stats)
    return {
        "path": os.path.abspath(path),
        "cache_file": metrics.statistics_path(config.cache_dir, config.dataset, resolution,
                                              classifier.classifier_id,
                                              config.real_num_images),
        "dataset": config.dataset,
        "resolution": resolution,
        "num_images": int(stats.metadata["num_images"]),
        "classifier": classifier.classifier_id,
        "feature_dim": int(feature_dim),
        "seconds": round(time.perf_counter() - start, 2),
    }
