"""autogan_tf: AutoGAN (neural architecture search for GAN generators) in TensorFlow/Keras.

The curated API is re-exported lazily: importing the package imports nothing heavy and has no
side effects; `autogan_tf.DerivedGenerator` imports TensorFlow on first use.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Architecture": "autogan_tf.search_space",
    "ArchitectureError": "autogan_tf.search_space",
    "REFERENCE_ARCHS": "autogan_tf.search_space",
    "SearchCell": "autogan_tf.nn.generators",
    "DerivedCell": "autogan_tf.nn.generators",
    "SharedGenerator": "autogan_tf.nn.generators",
    "DerivedGenerator": "autogan_tf.nn.generators",
    "Discriminator": "autogan_tf.nn.discriminator",
    "GANConfig": "autogan_tf.training.gan",
    "GANTrainer": "autogan_tf.training.gan",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'autogan_tf' has no attribute {name!r}")
