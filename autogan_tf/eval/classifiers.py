"""The classifiers IS and FID are computed with: loading them by name, their ids, a probe check.

A classifier maps a float32 batch of images in [-1, 1] (any size; resized inside to the
network's input size) to ``{'logits': [N, C], 'pool_3': [N, D]}``. The standard one is TF-GAN's
Inception network (``load_classifier('inception')``, 299x299, 1008 logits, 2048-d pool_3); a local
SavedModel path and the small built-in ``'digits'`` classifier share the interface. Each carries
a ``classifier_id`` that real statistics record, so statistics of another network are refused.

Example::

    classifier = load_classifier(default_classifier("digits"))   # the digits CNN
    classifier, num_classes, feature_dim = check_classifier(classifier, resolution=16)
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Callable, Mapping, Union

import numpy as np
import tensorflow as tf

from autogan_tf.errors import ClassifierError
from autogan_tf import images as image_lib

__all__ = [
    "INCEPTION_HANDLE",
    "INCEPTION_ID",
    "INCEPTION_INPUT_SIZE",
    "ClassifierError",
    "Classifier",
    "default_classifier",
    "load_classifier",
    "check_classifier",
]

INCEPTION_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_ID = "inception/tfgan-eval-1"
INCEPTION_INPUT_SIZE = 299


def default_classifier(dataset: str | None) -> str:
    """The classifier spec used when none is given: ``'digits'`` for the digits dataset.

    Every other dataset (``cifar10``, ``stl10``, folders, ``.npz`` files, or none) is scored
    with ``'inception'``, the network published IS and FID figures use.

    Args:
        dataset: A dataset name, or None.

    Returns:
        ``'digits'`` or ``'inception'``.
    """
    return "digits" if dataset == "digits" else "inception"


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
            lambda images: self._outputs(image_lib.quantize(images)),
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
            quantize: Round the images to the 256 uint8 levels first
                (:func:`autogan_tf.images.quantize`).

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
