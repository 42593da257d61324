"""GAN metrics: Inception score and Frechet distance over an injectable image classifier.

A classifier maps a float32 batch of images in [-1, 1] (any size; resized inside to the
network's input size) to ``{'logits': [N, C], 'pool_3': [N, D]}``. The standard one is TF-GAN's
Inception network (``load_classifier('inception')``, 299x299, 1008 logits, 2048-d pool_3); a local
SavedModel path and the small built-in ``'digits'`` classifier share the interface.

IS and FID go through TF-GAN (``classifier_score_from_logits``,
``frechet_classifier_distance_from_activations``); FID against precomputed real statistics
``(mu, sigma)`` uses the closed form with a symmetric eigen square root. As for published
numbers, images are quantised to uint8 before they are scored.

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

__all__ = [
    "INCEPTION_HANDLE",
    "INCEPTION_ID",
    "INCEPTION_INPUT_SIZE",
    "DEFAULT_BATCH_SIZE",
    "ClassifierError",
    "StatsError",
    "Classifier",
    "Statistics",
    "load_classifier",
    "quantize_images",
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
    "check_classifier",
    "check_statistics",
]

INCEPTION_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_ID = "inception/tfgan-eval-1"
INCEPTION_INPUT_SIZE = 299
DEFAULT_BATCH_SIZE = 100
_RANGE_TOLERANCE = 1e-3


from autogan_tf.errors import ClassifierError, StatsError  # noqa: E402  (re-exported)


# ----------------------------------------------------------------------------- classifiers


class Classifier:
    """An image classifier with the IS/FID interface, compiled as one ``tf.function``.

    Calling it with float32 images in [-1, 1] of shape [N, H, W, 3] returns
    ``{'logits': [N, C], 'pool_3': [N, D]}`` (outputs flattened to 2-D).

    Attributes:
        classifier_id: A stable name of the network; stored in real statistics files.
        input_size: Side the images are resized to before the network, or None to pass them as is.
    """

    def __init__(
        self,
        fn: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
        classifier_id: str,
        input_size: int | None = None,
    ):
        """Wraps a callable network.

        Args:
            fn: Maps float32 images in [-1, 1] at ``input_size`` to a dict with ``logits`` and
                ``pool_3``.
            classifier_id: Stable name of the network.
            input_size: Side to resize to (bilinear), or None.
        """
        self._fn = fn
        self.classifier_id = classifier_id
        self.input_size = input_size
        spec = tf.TensorSpec([None, None, None, 3], tf.float32)
        self._forward = tf.function(self._outputs, input_signature=[spec], autograph=False)
        self._forward_quantized = tf.function(
            lambda images: self._outputs(quantize_images(images)),
            input_signature=[spec],
            autograph=False,
        )

    def _outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        if self.input_size is not None:
            images = tf.image.resize(
                images, [self.input_size, self.input_size], method="bilinear", antialias=True
            )
        outputs = self._fn(images)
        if not isinstance(outputs, Mapping) or not {"logits", "pool_3"} <= set(outputs):
            keys = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
            raise ClassifierError(
                f"Classifier {self.classifier_id!r} must return a dict with 'logits' and "
                f"'pool_3', got {keys}."
            )
        batch = tf.shape(images)[0]
        return {
            key: tf.reshape(tf.cast(outputs[key], tf.float32), [batch, -1])
            for key in ("logits", "pool_3")
        }

    def __call__(self, images: Any, quantize: bool = False) -> dict[str, tf.Tensor]:
        """Runs the network.

        Args:
            images: float32 [N, H, W, 3] in [-1, 1].
            quantize: Round the images to 256 levels first (see :func:`quantize_images`).

        Returns:
            ``{'logits': [N, C], 'pool_3': [N, D]}`` float32 tensors.
        """
        images = tf.convert_to_tensor(images, tf.float32)
        return (self._forward_quantized if quantize else self._forward)(images)

    def __repr__(self) -> str:
        return f"Classifier({self.classifier_id!r}, input_size={self.input_size})"


def _hub_load(handle: str):
    import tensorflow_hub as hub  # pylint: disable=import-outside-toplevel

    return hub.load(handle)


def _saved_model_id(path: str) -> str:
    try:
        fingerprint = tf.saved_model.experimental.read_fingerprint(path)
        return f"savedmodel:{fingerprint.saved_model_checksum}"
    except Exception:  # pylint: disable=broad-except  # Older SavedModels have no fingerprint.
        digest = hashlib.sha256()
        for name in ("saved_model.pb", "variables/variables.index"):
            file_path = os.path.join(path, name)
            if os.path.isfile(file_path):
                with open(file_path, "rb") as f:
                    digest.update(f.read())
        return f"savedmodel:sha256:{digest.hexdigest()[:16]}"


def _callable_of(loaded: Any, where: str) -> tuple[Callable, int | None]:
    """Returns (callable on images, static input side or None) for a loaded SavedModel."""
    if callable(loaded) and hasattr(loaded, "__call__"):
        size = None
        concrete = getattr(loaded.__call__, "concrete_functions", None) or []
        for function in concrete:
            specs = tf.nest.flatten(function.structured_input_signature)
            if specs and specs[0].shape.rank == 4 and specs[0].shape[1] is not None:
                size = int(specs[0].shape[1])
        return loaded, size
    signatures = getattr(loaded, "signatures", {}) or {}
    for key in ("serving_default", "default"):
        if key in signatures:
            signature = signatures[key]
            _, kwargs = signature.structured_input_signature
            if len(kwargs) != 1:
                break
            (name, spec), = kwargs.items()
            size = int(spec.shape[1]) if spec.shape.rank == 4 and spec.shape[1] else None
            return (lambda images: signature(**{name: images})), size
    raise ClassifierError(
        f"{where}: the SavedModel is not callable and has no one-input 'serving_default' "
        "signature returning {'logits', 'pool_3'}."
    )


def load_classifier(
    spec: Union[str, Classifier],
    cache_dir: str | None = None,
    *,
    input_size: int | None = None,
) -> Classifier:
    """Loads the classifier that IS and FID are computed with.

    Args:
        spec: ``'inception'`` (TF-GAN's TF-Hub Inception network, needs internet or a TF-Hub
            cache), ``'digits'`` (the built-in classifier for the ``digits`` dataset, built and
            cached on first use), a TF-Hub URL, or a local directory holding a SavedModel or a
            TF-Hub module whose call returns ``{'logits', 'pool_3'}``. A :class:`Classifier` is
            returned as is.
        cache_dir: Cache root for the digits classifier (default ``$AUTOGAN_TF_CACHE`` or
            ``~/.cache/autogan_tf``).
        input_size: Side to resize images to; by default 299 for Inception, the model's static
            input size for a local SavedModel, and no resize when the model accepts any size.

    Returns:
        A :class:`Classifier`.

    Raises:
        ClassifierError: If the classifier cannot be found or loaded.
    """
    if isinstance(spec, Classifier):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ClassifierError(f"A classifier spec must be a non-empty string, got {spec!r}.")
    if spec == "digits":
        from autogan_tf.eval import digits_classifier  # pylint: disable=import-outside-toplevel

        path = digits_classifier.ensure_digits_classifier(cache_dir)
        loaded = tf.saved_model.load(path)
        metadata = digits_classifier.read_metadata(path) or {}
        classifier_id = metadata.get("classifier_id", digits_classifier.CLASSIFIER_ID_PREFIX)
        return Classifier(loaded, classifier_id, input_size)
    if spec == "inception" or spec.startswith(("http://", "https://")):
        handle = INCEPTION_HANDLE if spec == "inception" else spec
        try:
            loaded = _hub_load(handle)
        except Exception as err:  # pylint: disable=broad-except  # URLError, OSError, ...
            raise ClassifierError(
                f"Cannot load the classifier from {handle} ({type(err).__name__}: {err}). "
                "Machines without internet cannot fetch it: pass "
                "--classifier=<local SavedModel path> (e.g. a copy of the TF-Hub module "
                "tfgan/eval/inception/1 downloaded elsewhere)."
            ) from err
        fn, _ = _callable_of(loaded, handle)
        classifier_id = INCEPTION_ID if handle == INCEPTION_HANDLE else f"tfhub:{handle}"
        return Classifier(fn, classifier_id, input_size or INCEPTION_INPUT_SIZE)
    path = os.path.abspath(os.path.expanduser(spec))
    if not os.path.isdir(path):
        raise ClassifierError(
            f"Classifier {spec!r} is not 'inception', 'digits', a TF-Hub URL or an existing "
            "SavedModel directory."
        )
    try:
        loaded = tf.saved_model.load(path)
    except Exception as err:  # pylint: disable=broad-except
        try:
            loaded = _hub_load(path)
        except Exception:  # pylint: disable=broad-except
            raise ClassifierError(f"{path}: cannot load a SavedModel ({err}).") from err
    fn, static_size = _callable_of(loaded, path)
    from autogan_tf.eval import digits_classifier  # pylint: disable=import-outside-toplevel

    metadata = digits_classifier.read_metadata(path) or {}
    classifier_id = metadata.get("classifier_id") or _saved_model_id(path)
    return Classifier(fn, classifier_id, input_size or static_size)


# ----------------------------------------------------------------------------- activations


def quantize_images(images: tf.Tensor) -> tf.Tensor:
    """Rounds float images in [-1, 1] to 256 levels (as uint8 would) and maps them back.

    Args:
        images: float32 images in [-1, 1].

    Returns:
        float32 images in [-1, 1] with values ``k / 127.5 - 1`` for integers k in 0..255.
    """
    levels = tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0)
    return levels / 127.5 - 1.0


def _check_batch(images: Any, where: str) -> tf.Tensor:
    """Validates a batch; returns float32 [N, H, W, 3] in [-1, 1] (uint8 input is rescaled)."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 3:  # Grey NHW.
        images = images[..., None]
    if images.shape.rank != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{where}: expected images [N, H, W, 3] (or 1 channel), got shape {images.shape}."
        )
    if images.shape[-1] == 1:
        images = tf.repeat(images, 3, axis=-1)
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    if not images.dtype.is_floating:
        raise ValueError(f"{where}: expected float images in [-1, 1] or uint8, got {images.dtype}.")
    return tf.cast(images, tf.float32)


def _range_error(where: str, low: float, high: float) -> ValueError:
    return ValueError(
        f"{where}: float images must lie in [-1, 1], found values in [{low:.4g}, {high:.4g}] "
        "(uint8 images in 0..255 are accepted as dtype uint8)."
    )


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

    Args:
        classifier: A :class:`Classifier` or a spec for :func:`load_classifier`.
        images_or_sample_fn: An array [N, H, W, 3] (float in [-1, 1], or uint8 in 0..255), or a
            function ``sample_fn(n)`` returning n float images in [-1, 1].
        num_images: How many images to score; default all of an array (required with a
            sample function).
        batch_size: Images per classifier call.
        quantize: Round float images to 256 levels before scoring (the published protocol).
        progress: Show a progress bar.

    Returns:
        ``{'logits': float32 [num_images, C], 'pool_3': float32 [num_images, D]}``.

    Raises:
        ValueError: For images of the wrong shape, dtype or range, or a wrong count.
    """
    classifier = load_classifier(classifier)
    sample_fn = None if _is_array(images_or_sample_fn) else images_or_sample_fn
    if sample_fn is None:
        images = images_or_sample_fn
        total = int(images.shape[0])
        num_images = total if num_images is None else num_images
        if num_images > total:
            raise ValueError(f"Asked for {num_images} images but only {total} were given.")
        if isinstance(images, np.ndarray) and np.issubdtype(images.dtype, np.floating):
            low, high = float(images[:num_images].min()), float(images[:num_images].max())
            if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
                raise _range_error("images", low, high)
    elif not callable(sample_fn):
        raise ValueError(
            f"Expected an image array or a sample function, got {type(sample_fn).__name__}."
        )
    elif num_images is None:
        raise ValueError("num_images is required with a sample function.")
    if num_images < 1 or batch_size < 1:
        raise ValueError(
            f"num_images and batch_size must be positive, got {num_images} and {batch_size}."
        )

    bar = None
    if progress:
        import keras  # pylint: disable=import-outside-toplevel

        bar = keras.utils.Progbar(num_images, unit_name="image")
    logits, pool = [], []
    ranges = []
    done = 0
    while done < num_images:
        n = min(batch_size, num_images - done)
        if sample_fn is None:
            batch = _check_batch(images[done : done + n], "images")
        else:
            batch = _check_batch(sample_fn(n), "sample_fn output")
            if batch.shape[0] is not None and batch.shape[0] != n:
                raise ValueError(f"sample_fn({n}) returned {batch.shape[0]} images.")
        ranges.append(tf.stack([tf.reduce_min(batch), tf.reduce_max(batch)]))
        outputs = classifier(batch, quantize=quantize)
        logits.append(outputs["logits"])
        pool.append(outputs["pool_3"])
        done += n
        if bar is not None:
            bar.update(done)
    if ranges:
        bounds = tf.stack(ranges).numpy()
        low, high = float(bounds[:, 0].min()), float(bounds[:, 1].max())
        if low < -1 - _RANGE_TOLERANCE or high > 1 + _RANGE_TOLERANCE:
            raise _range_error("images" if sample_fn is None else "sample_fn output", low, high)
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
        ValueError: If logits are not 2-D or there are fewer images than splits.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {logits.shape}.")
    if splits < 1 or logits.shape[0] < splits:
        raise ValueError(
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
        raise ValueError(f"activations must be [N >= 2, D], got shape {activations.shape}.")
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
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"Statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}."
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
    """
    stats_a, stats_b = _as_stats(act_a_or_stats), _as_stats(act_b_or_stats)
    if stats_a is None and stats_b is None:
        a = np.asarray(act_a_or_stats, np.float64)
        b = np.asarray(act_b_or_stats, np.float64)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"Activations must be [N, D] and [M, D], got {a.shape} and {b.shape}.")
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
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, sigma = data["mu"], data["sigma"]
            metadata = json.loads(str(data["metadata"])) if "metadata" in data else {}
    except (KeyError, OSError, ValueError) as err:
        raise StatsError(
            f"{path}: not a statistics file with arrays 'mu' and 'sigma' ({err})."
        ) from err
    if mu.ndim != 1 or sigma.shape != mu.shape * 2:
        raise StatsError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not match.")
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
    from autogan_tf import data  # pylint: disable=import-outside-toplevel

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
        ValueError: If the generated images have the wrong shape or range.
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


def check_classifier(classifier: Union[str, Classifier], resolution: int = 16,
                     cache_dir: str | None = None) -> tuple[Classifier, int, int]:
    """Loads a classifier and runs it once on two images, before a run writes anything.

    Args:
        classifier: A :class:`Classifier` or a spec for :func:`load_classifier`.
        resolution: Side of the probe images (the run's image size).
        cache_dir: Cache root for the digits classifier.

    Returns:
        ``(classifier, num_classes, feature_dim)``.

    Raises:
        ClassifierError: If it cannot be loaded, or its outputs are not finite 2-D logits and
            features.
    """
    classifier = load_classifier(classifier, cache_dir)
    probe = tf.linspace(-1.0, 1.0, 2 * resolution * resolution * 3)
    try:
        outputs = classifier(tf.reshape(probe, [2, resolution, resolution, 3]))
    except ClassifierError:
        raise
    except Exception as err:  # pylint: disable=broad-except  # any failure of a user network
        raise ClassifierError(
            f"Classifier {classifier.classifier_id!r} failed on two {resolution}px images: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from err
    logits, pool = outputs["logits"].numpy(), outputs["pool_3"].numpy()
    if logits.shape[0] != 2 or pool.shape[0] != 2 or logits.shape[1] < 2:
        raise ClassifierError(
            f"Classifier {classifier.classifier_id!r} returned logits {logits.shape} and pool_3 "
            f"{pool.shape} for 2 images; expected [2, classes >= 2] and [2, features]."
        )
    if not (np.isfinite(logits).all() and np.isfinite(pool).all()):
        raise ClassifierError(
            f"Classifier {classifier.classifier_id!r} returned non-finite outputs."
        )
    return classifier, int(logits.shape[1]), int(pool.shape[1])


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
