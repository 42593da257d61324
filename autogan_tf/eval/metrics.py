"""GAN metrics: Inception score and Frechet distance over an injectable image classifier.

IS and FID go through TF-GAN (``classifier_score_from_logits``,
``frechet_classifier_distance_from_activations``); FID against precomputed real statistics
``(mu, sigma)`` uses the closed form with a symmetric eigen square root. As for published
numbers, images are quantised to uint8 before they are scored, and images with NaN or Inf are
refused (``NonFiniteError``) rather than scored. The classifiers (Inception, the digits CNN, a
local SavedModel) live in :mod:`autogan_tf.eval.classifiers`; their names are re-exported here.

Example::

    classifier = load_classifier("digits")
    stats = real_statistics("digits", 16, classifier)            # cached .npz
    scores = score_generator(sample_fn, 5000, classifier, real_stats=stats)
    scores["is_mean"], scores["fid"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import warnings
from typing import Any, Callable, Mapping, Union

import numpy as np
import tensorflow as tf

from autogan_tf import data
from autogan_tf.errors import ClassifierError, EvaluationError, StatsError
from autogan_tf.eval import classifiers
from autogan_tf.eval.classifiers import (  # noqa: F401  (re-exported through __all__)
    INCEPTION_HANDLE,
    INCEPTION_ID,
    INCEPTION_INPUT_SIZE,
    Classifier,
    check_classifier,
    default_classifier,
    load_classifier,
)
from autogan_tf.images import check_image_values, check_images, from_uint8

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "StatsError",
    "Statistics",
    "compute_activations",
    "inception_score",
    "frechet_distance",
    "frechet_distance_from_stats",
    "compute_statistics",
    "save_statistics",
    "load_statistics",
    "statistics_path",
    "real_statistics",
    "resolve_statistics",
    "score_generator",
    "scores_from_activations",
    "check_statistics",
] + classifiers.__all__  # re-exported, so callers need one import for metrics and classifiers

DEFAULT_BATCH_SIZE = 100


# ----------------------------------------------------------------------------- activations


def compute_activations(
    classifier: Union[str, Classifier],
    images_or_sample_fn: Union[np.ndarray, tf.Tensor, Callable[[int], Any]],
    num_images: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    quantize: bool = True,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Runs the classifier over images in batches.

    Every image is checked by :func:`autogan_tf.images.check_images` (layout, dtype, range and
    finiteness); an array up front, a sample function's output batch by batch, so a broken
    generator stops the run at its first batch.

    Args:
        classifier: A :class:`Classifier` or a spec for :func:`load_classifier`.
        images_or_sample_fn: An array [N, H, W, 3] (float in [-1, 1], or uint8 in 0..255), or a
            function ``sample_fn(n)`` returning n such images.
        num_images: How many images to score; default all of an array (required with a
            sample function).
        batch_size: Images per classifier call.
        quantize: Round float images to 256 levels before scoring (the published protocol).
        progress: Show a progress bar.

    Returns:
        ``{'logits': float32 [num_images, C], 'pool_3': float32 [num_images, D]}``.

    Raises:
        EvaluationError: For images of the wrong shape, dtype or range, or a wrong count.
        NonFiniteError: For images holding NaN or Inf, naming how many.
    """
    classifier = load_classifier(classifier)
    sample_fn = None if _is_array(images_or_sample_fn) else images_or_sample_fn
    if sample_fn is None:
        images = check_images(images_or_sample_fn, "images")
        total = int(images.shape[0])
        num_images = total if num_images is None else num_images
        if num_images > total:
            raise EvaluationError(f"Asked for {num_images} images but only {total} were given.")
    elif not callable(sample_fn):
        raise EvaluationError(
            f"Expected an image array or a sample function, got {type(sample_fn).__name__}."
        )
    elif num_images is None:
        raise EvaluationError("num_images is required with a sample function.")
    if num_images < 1 or batch_size < 1:
        raise EvaluationError(
            f"num_images and batch_size must be positive, got {num_images} and {batch_size}."
        )

    bar = None
    if progress:
        import keras  # pylint: disable=import-outside-toplevel

        bar = keras.utils.Progbar(num_images, unit_name="image")
    logits, pool = [], []
    done = 0
    while done < num_images:
        n = min(batch_size, num_images - done)
        if sample_fn is None:
            batch = tf.convert_to_tensor(images[done : done + n])
        else:
            where = f"sample_fn output (images {done}..{done + n - 1})"
            batch = check_images(tf.convert_to_tensor(sample_fn(n)), where, check_values=False)
            if batch.shape[0] != n:
                raise EvaluationError(f"sample_fn({n}) returned {batch.shape[0]} images.")
        floats = from_uint8(batch) if batch.dtype == tf.uint8 else tf.cast(batch, tf.float32)
        outputs = classifier(floats, quantize=quantize)
        if sample_fn is not None:  # Checked after the classifier is queued, so both overlap.
            check_image_values(batch, where)
        logits.append(outputs["logits"])
        pool.append(outputs["pool_3"])
        done += n
        if bar is not None:
            bar.update(done)
    return {
        "logits": tf.concat(logits, axis=0).numpy(),
        "pool_3": tf.concat(pool, axis=0).numpy(),
    }


def _is_array(value: Any) -> bool:
    return isinstance(value, (np.ndarray, tf.Tensor)) or (
        hasattr(value, "shape") and hasattr(value, "dtype") and not callable(value)
    )


# ----------------------------------------------------------------------------- scores


def _tfgan_eval():
    from autogan_tf.eval.tfgan_shim import tfgan  # pylint: disable=import-outside-toplevel

    return tfgan().eval


def inception_score(logits: Any, splits: int = 10) -> tuple[float, float]:
    """Inception score ``exp(E[KL(p(y|x) || p(y))])``, mean and std over equal splits.

    Each split's score comes from TF-GAN's ``classifier_score_from_logits`` (in float64).
    As in the standard protocol, the N images form ``splits`` parts of ``N // splits`` images;
    the std is the population std over the parts.

    Args:
        logits: [N, C] classifier logits.
        splits: Number of parts.

    Returns:
        ``(mean, std)`` as floats.

    Raises:
        EvaluationError: If logits are not 2-D or there are fewer images than splits.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise EvaluationError(f"logits must be [N, C], got shape {logits.shape}.")
    if splits < 1 or logits.shape[0] < splits:
        raise EvaluationError(
            f"Need at least {splits} images for {splits} splits, got {logits.shape[0]}."
        )
    part = logits.shape[0] // splits
    score_fn = _tfgan_eval().classifier_score_from_logits
    scores = [
        float(score_fn(tf.constant(logits[k * part : (k + 1) * part])).numpy())
        for k in range(splits)
    ]
    return float(np.mean(scores)), float(np.std(scores))


@dataclasses.dataclass
class Statistics:
    """Mean and covariance of classifier features, with where they came from.

    Attributes:
        mu: [D] mean.
        sigma: [D, D] unbiased covariance.
        metadata: ``classifier_id``, ``dataset``, ``resolution``, ``num_images`` and the like.
    """

    mu: np.ndarray
    sigma: np.ndarray
    metadata: dict = dataclasses.field(default_factory=dict)


def compute_statistics(activations: Any, metadata: dict | None = None) -> Statistics:
    """Returns the mean and unbiased covariance of [N, D] activations (float64).

    Args:
        activations: [N, D] features, N >= 2.
        metadata: Stored with the result.

    Returns:
        A :class:`Statistics`.
    """
    activations = np.asarray(activations, dtype=np.float64)
    if activations.ndim != 2 or activations.shape[0] < 2:
        raise EvaluationError(
            f"activations must be [N >= 2, D], got shape {activations.shape}; score at least 2 "
            "images."
        )
    return Statistics(
        mu=activations.mean(axis=0),
        sigma=np.cov(activations, rowvar=False),
        metadata=dict(metadata or {}, num_images=int(activations.shape[0])),
    )


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_stats(
    mu1: Any, sigma1: Any, mu2: Any, sigma2: Any
) -> float:
    """Frechet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, where the trace of the
    square root is taken as ``tr((A sigma2 A)^(1/2))`` with ``A = sigma1^(1/2)`` (a symmetric
    matrix, so eigen square roots are stable; the same route as TF-GAN).

    Args:
        mu1: [D] mean.
        sigma1: [D, D] covariance.
        mu2: [D] mean.
        sigma2: [D, D] covariance.

    Returns:
        The distance as a float.

    Raises:
        StatsError: If the shapes do not match.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise StatsError(
            f"Statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}; both sides need the same classifier."
        )
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None))))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


def _as_stats(value: Any) -> Statistics | None:
    """Returns Statistics for stats-like values, None for activations."""
    if isinstance(value, Statistics):
        return value
    if isinstance(value, Mapping) and "mu" in value and "sigma" in value:
        return Statistics(np.asarray(value["mu"]), np.asarray(value["sigma"]))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        mu, sigma = np.asarray(value[0]), np.asarray(value[1])
        if mu.ndim == 1 and sigma.ndim == 2:
            return Statistics(mu, sigma)
    return None


def frechet_distance(act_a_or_stats: Any, act_b_or_stats: Any) -> float:
    """Frechet distance (FID with Inception features) between two feature sets.

    With two activation arrays it is TF-GAN's ``frechet_classifier_distance_from_activations``
    (float64). If either side is statistics (a :class:`Statistics`, a ``(mu, sigma)`` pair or a
    mapping with ``mu`` and ``sigma``), the other side is reduced to statistics and the closed
    form :func:`frechet_distance_from_stats` is used.

    Args:
        act_a_or_stats: [N, D] activations or statistics.
        act_b_or_stats: [M, D] activations or statistics.

    Returns:
        The distance as a float.

    Raises:
        StatsError: If the feature sizes do not match.
    """
    stats_a, stats_b = _as_stats(act_a_or_stats), _as_stats(act_b_or_stats)
    if stats_a is None and stats_b is None:
        a = np.asarray(act_a_or_stats, np.float64)
        b = np.asarray(act_b_or_stats, np.float64)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise StatsError(
                f"Activations must be [N, D] and [M, D], got {a.shape} and {b.shape}."
            )
        fid = _tfgan_eval().frechet_classifier_distance_from_activations(
            tf.constant(a), tf.constant(b)
        )
        return float(fid.numpy())
    stats_a = stats_a or compute_statistics(act_a_or_stats)
    stats_b = stats_b or compute_statistics(act_b_or_stats)
    return frechet_distance_from_stats(stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma)


# ----------------------------------------------------------------------------- real statistics


def save_statistics(path: str, stats: Statistics) -> None:
    """Writes statistics to an ``.npz`` (keys ``mu``, ``sigma``, ``metadata`` as JSON), atomically.

    Args:
        path: Output file.
        stats: The statistics.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                mu=np.asarray(stats.mu, np.float64),
                sigma=np.asarray(stats.sigma, np.float64),
                metadata=np.array(json.dumps(stats.metadata, sort_keys=True)),
            )
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_statistics(path: str, classifier_id: str | None = None) -> Statistics:
    """Reads statistics written by :func:`save_statistics` (or any ``mu``/``sigma`` .npz).

    Args:
        path: The ``.npz`` file.
        classifier_id: If given, the file's ``classifier_id`` must be the same.

    Returns:
        A :class:`Statistics`.

    Raises:
        StatsError: If the file is missing or malformed, or was made with another classifier.
            A file that records no classifier (e.g. bare ``mu``/``sigma`` from elsewhere) is
            accepted with a warning.
    """
    if not os.path.isfile(path):
        raise StatsError(f"No such statistics file: {path}")
    with data.open_npz(path, StatsError) as arrays:
        if "mu" not in arrays or "sigma" not in arrays:
            raise StatsError(
                f"{path}: not a statistics file: it holds {sorted(arrays.keys())}, not the arrays "
                "'mu' and 'sigma'."
            )
        mu, sigma = arrays["mu"], arrays["sigma"]
        try:
            metadata = json.loads(str(arrays["metadata"])) if "metadata" in arrays else {}
        except json.JSONDecodeError as err:
            raise StatsError(f"{path}: its 'metadata' is not JSON ({err}).") from err
    if mu.ndim != 1 or sigma.shape != mu.shape * 2:
        raise StatsError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not match.")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise StatsError(f"{path}: mu or sigma holds NaN or Inf; compute the statistics again.")
    stored = metadata.get("classifier_id")
    if classifier_id is not None and stored is not None and stored != classifier_id:
        raise StatsError(
            f"{path} was computed with classifier {stored!r}, but the images are scored with "
            f"{classifier_id!r}. Use statistics computed with the same classifier (or let them be "
            "computed from --dataset)."
        )
    if classifier_id is not None and stored is None:
        warnings.warn(
            f"{path} does not record which classifier made it, so it cannot be checked against "
            f"{classifier_id!r}; it is used as is.",
            stacklevel=2,
        )
    return Statistics(mu, sigma, metadata)


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40]
    if slug == text:
        return slug
    return f"{slug}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def statistics_path(
    cache_dir: str | None,
    dataset: str,
    resolution: int,
    classifier_id: str,
    num_images: int | None = None,
) -> str:
    """Returns the cache file of the real statistics for one dataset, size and classifier."""
    from autogan_tf.eval import digits_classifier  # pylint: disable=import-outside-toplevel

    if os.path.exists(dataset) or dataset.startswith("folder:"):
        dataset = "path:" + os.path.abspath(dataset.removeprefix("folder:"))
    count = "all" if num_images is None else str(num_images)
    name = f"{_slug(dataset)}_{resolution}px_{_slug(classifier_id)}_{count}.npz"
    return os.path.join(cache_dir or digits_classifier.default_cache_dir(), "stats", name)


def real_statistics(
    dataset: str,
    resolution: int,
    classifier: Union[str, Classifier],
    cache_dir: str | None = None,
    num_images: int | None = None,
    data_dir: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    progress: bool = False,
) -> Statistics:
    """Returns the real-image statistics of a dataset, computing and caching them once.

    The file lives at :func:`statistics_path`; a later call with the same dataset, resolution,
    classifier and count reads it instead of recomputing.

    Args:
        dataset: A dataset name as accepted by :func:`autogan_tf.data.load_images`.
        resolution: Image side the statistics are computed at.
        classifier: A :class:`Classifier` or a spec for :func:`load_classifier`.
        cache_dir: Cache root (default ``$AUTOGAN_TF_CACHE`` or ``~/.cache/autogan_tf``).
        num_images: Use the first this many images (all when None).
        data_dir: TFDS data directory.
        batch_size: Images per classifier call.
        progress: Show a progress bar while computing.

    Returns:
        A :class:`Statistics` with metadata ``classifier_id``, ``dataset``, ``resolution``,
        ``num_images``.
    """
    classifier = load_classifier(classifier, cache_dir)
    path = statistics_path(cache_dir, dataset, resolution, classifier.classifier_id, num_images)
    if os.path.isfile(path):
        return load_statistics(path, classifier.classifier_id)
    images = data.load_images(dataset, resolution, max_images=num_images, data_dir=data_dir)
    activations = compute_activations(
        classifier, images, batch_size=batch_size, progress=progress
    )["pool_3"]
    stats = compute_statistics(
        activations,
        {"classifier_id": classifier.classifier_id, "dataset": dataset, "resolution": resolution},
    )
    save_statistics(path, stats)
    return stats


# ----------------------------------------------------------------------------- generator scoring


def resolve_statistics(real_stats: Any, classifier_id: str | None = None) -> Statistics:
    """Turns a statistics-like value or an .npz path into :class:`Statistics`, checked.

    Args:
        real_stats: A :class:`Statistics`, a ``(mu, sigma)`` pair, a mapping with ``mu`` and
            ``sigma``, or a path to a statistics ``.npz``.
        classifier_id: If given, statistics that record another classifier are rejected.

    Returns:
        The statistics.

    Raises:
        StatsError: If the value is not statistics or was made with another classifier.
    """
    if isinstance(real_stats, (str, os.PathLike)):
        return load_statistics(os.fspath(real_stats), classifier_id)
    stats = _as_stats(real_stats)
    if stats is None:
        raise StatsError(
            "real_stats must be a Statistics, a (mu, sigma) pair, a mapping with 'mu' and "
            f"'sigma', or a path to an .npz; got {type(real_stats).__name__}."
        )
    stored = stats.metadata.get("classifier_id")
    if classifier_id is not None and stored is not None and stored != classifier_id:
        raise StatsError(
            f"The real statistics were computed with classifier {stored!r}, but the images are "
            f"scored with {classifier_id!r}."
        )
    return stats


def score_generator(
    sample_fn: Callable[[int], Any],
    num_images: int,
    classifier: Union[str, Classifier],
    real_stats: Any = None,
    splits: int = 10,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Scores a generator by IS (and FID when real statistics are given).

    Args:
        sample_fn: ``sample_fn(n)`` returns n float images [n, H, W, 3] in [-1, 1].
        num_images: Images to generate and score.
        classifier: A :class:`Classifier` or a spec for :func:`load_classifier`.
        real_stats: Real statistics (a :class:`Statistics`, ``(mu, sigma)``, or an .npz path), or
            None to skip FID.
        splits: IS splits.
        batch_size: Images per generator and classifier call.
        progress: Show a progress bar.

    Returns:
        ``{'is_mean', 'is_std', 'fid' (None without real_stats), 'num_images'}``.

    Raises:
        StatsError: If the statistics were made with another classifier.
        EvaluationError: If the generated images have the wrong shape or range.
        NonFiniteError: If generated images hold NaN or Inf.
    """
    classifier = load_classifier(classifier)
    stats = None
    if real_stats is not None:
        stats = resolve_statistics(real_stats, classifier.classifier_id)
    outputs = compute_activations(
        classifier, sample_fn, num_images, batch_size=batch_size, progress=progress
    )
    return scores_from_activations(outputs, stats, splits)


def scores_from_activations(
    outputs: Mapping[str, np.ndarray], real_stats: Any = None, splits: int = 10
) -> dict[str, Any]:
    """Computes IS (and FID against ``real_stats`` when given) from classifier outputs.

    Args:
        outputs: ``{'logits': [N, C], 'pool_3': [N, D]}`` from :func:`compute_activations`.
        real_stats: Statistics-like value (see :func:`frechet_distance`) or None.
        splits: IS splits.

    Returns:
        ``{'is_mean', 'is_std', 'fid', 'num_images'}``.
    """
    is_mean, is_std = inception_score(outputs["logits"], splits)
    fid = None
    if real_stats is not None:
        fid = frechet_distance(real_stats, outputs["pool_3"])
    return {
        "is_mean": is_mean,
        "is_std": is_std,
        "fid": fid,
        "num_images": int(outputs["logits"].shape[0]),
    }


def check_statistics(stats: Statistics, feature_dim: int, where: str = "real statistics") -> None:
    """Checks that statistics have the classifier's feature size.

    Raises:
        StatsError: Naming both sizes.
    """
    if tuple(np.shape(stats.mu)) != (feature_dim,):
        raise StatsError(
            f"{where} have {np.shape(stats.mu)[0]}-d features, but the classifier's pool_3 has "
            f"{feature_dim}; use statistics computed with the same classifier."
        )
