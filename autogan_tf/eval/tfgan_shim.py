"""Makes ``import tensorflow_gan`` work on TensorFlow 2.21: the one place for that workaround.

tensorflow-gan 2.1.0 (the latest release) subclasses ``tf.estimator.SessionRunHook`` at import
time, and ``tf.estimator`` was removed in TensorFlow 2.16. Only TF-GAN's ``eval`` module is used
by this project, so the estimator API is replaced by placeholder modules whose attributes are
classes that raise when constructed. ``tensorflow_probability`` and ``tensorflow_hub`` are imported
first because they replace ``tf.compat.v1`` on import and would drop the placeholders.

Nothing happens at import time of this module; call :func:`tfgan` to get the TF-GAN module::

    from autogan_tf.eval.tfgan_shim import tfgan
    score = tfgan().eval.classifier_score_from_logits(logits)
"""

from __future__ import annotations

import importlib
import threading
import types
from typing import Any

__all__ = ["EstimatorUnavailableError", "tfgan", "install_estimator_placeholders"]

_LOCK = threading.Lock()
_MODULE: types.ModuleType | None = None


class EstimatorUnavailableError(RuntimeError):
    """Raised when code tries to use the removed ``tf.estimator`` API through the placeholders."""


class _PlaceholderModule(types.ModuleType):
    """A module whose unknown attributes are classes that raise when constructed.

    Subclassing such a class at import time works (TF-GAN does that); instantiating it raises
    :class:`EstimatorUnavailableError`.
    """

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        qualified = f"{self.__name__}.{name}"

        def _raise(self_: Any, *args: Any, **kwargs: Any) -> None:
            del self_, args, kwargs
            raise EstimatorUnavailableError(
                f"{qualified} is not available: TensorFlow >= 2.16 has no tf.estimator; "
                "only tensorflow_gan.eval is supported in this project."
            )

        placeholder = type(name, (object,), {"__init__": _raise, "__module__": self.__name__})
        setattr(self, name, placeholder)
        return placeholder


def _placeholder_estimator(name: str) -> types.ModuleType:
    module = _PlaceholderModule(name, "Placeholder for the removed tf.estimator API.")
    module.tpu = _PlaceholderModule(name + ".tpu", "Placeholder for tf.estimator.tpu.")
    return module


def install_estimator_placeholders() -> None:
    """Installs placeholder ``tf.estimator`` and ``tf.compat.v1.estimator`` modules if missing.

    Imports ``tensorflow_probability`` and ``tensorflow_hub`` first, since both rebuild
    ``tf.compat.v1`` on import. Existing real estimator modules are left untouched.
    """
    import tensorflow as tf

    importlib.import_module("tensorflow_probability")
    importlib.import_module("tensorflow_hub")
    if not hasattr(tf, "estimator"):
        tf.estimator = _placeholder_estimator("tensorflow.estimator")
    if not hasattr(tf.compat.v1, "estimator"):
        tf.compat.v1.estimator = _placeholder_estimator("tensorflow.compat.v1.estimator")


def tfgan() -> types.ModuleType:
    """Returns the ``tensorflow_gan`` module, installing the TF 2.21 workaround on first use.

    Returns:
        The imported ``tensorflow_gan`` module.
    """
    global _MODULE
    with _LOCK:
        if _MODULE is None:
            install_estimator_placeholders()
            _MODULE = importlib.import_module("tensorflow_gan")
        return _MODULE
