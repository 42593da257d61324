"""Builds, saves and caches the small CNN that scores images of the embedded ``digits`` dataset.

It plays the part the Inception network plays for CIFAR-10: IS and FID of generators trained on
``digits`` are computed with its logits (10 classes) and its ``pool_3`` features (64-d). It is
trained for a few seconds on CPU on scikit-learn's 1,797 digits at 16 px, with a fixed seed, and
saved as a SavedModel whose ``__call__`` maps float32 images in [-1, 1] of any size
(``[None, None, None, 3]``) to ``{'logits': [N, 10], 'pool_3': [N, 64]}``, resizing inside.

The SavedModel is cached under ``<cache_dir>/digits_classifier/seed<seed>``; the cache dir
defaults to ``$AUTOGAN_TF_CACHE`` or ``~/.cache/autogan_tf``. Example::

    path = ensure_digits_classifier()          # builds once, then reuses
    model = tf.saved_model.load(path)
    out = model(images)                          # {'logits': ..., 'pool_3': ...}
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

__all__ = [
    "CLASSIFIER_ID_PREFIX",
    "INPUT_SIZE",
    "NUM_CLASSES",
    "FEATURE_DIM",
    "default_cache_dir",
    "digits_classifier_path",
    "build_digits_classifier",
    "ensure_digits_classifier",
    "read_metadata",
]

CLASSIFIER_ID_PREFIX = "digits-cnn-v1"
INPUT_SIZE = 16
NUM_CLASSES = 10
FEATURE_DIM = 64
_METADATA_FILE = "autogan_tf_classifier.json"
_HELD_OUT_FRACTION = 0.2


def default_cache_dir() -> str:
    """Returns ``$AUTOGAN_TF_CACHE`` if set, else ``~/.cache/autogan_tf``."""
    return os.environ.get("AUTOGAN_TF_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "autogan_tf"
    )


def digits_classifier_path(cache_dir: str | None = None, seed: int = 0) -> str:
    """Returns where the SavedModel for ``seed`` lives (whether or not it exists yet)."""
    return os.path.join(cache_dir or default_cache_dir(), "digits_classifier", f"seed{seed}")


def _build_model(seed: int):
    import keras  # pylint: disable=import-outside-toplevel

    def init(offset: int):
        return keras.initializers.GlorotUniform(seed=seed * 100 + offset)

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3))
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(1))(
        inputs
    )
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init(2))(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer=init(3))(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(
        FEATURE_DIM, activation="relu", kernel_initializer=init(4), name="pool_3"
    )(x)
    logits = keras.layers.Dense(NUM_CLASSES, kernel_initializer=init(5), name="logits")(features)
    return keras.Model(inputs, {"logits": logits, "pool_3": features})


class _DigitsClassifierModule(tf.Module):
    """The saved module: resizes to 16 px and returns logits and features."""

    def __init__(self, model):
        super().__init__(name="digits_classifier")
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def __call__(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        size = tf.shape(images)[1:3]
        images = tf.cond(
            tf.reduce_all(tf.equal(size, INPUT_SIZE)),
            lambda: images,
            lambda: tf.image.resize(images, [INPUT_SIZE, INPUT_SIZE], antialias=True),
        )
        outputs = self.model(images, training=False)
        return {"logits": outputs["logits"], "pool_3": outputs["pool_3"]}


def _train(seed: int, epochs: int, batch_size: int, learning_rate: float = 1e-3):
    """Trains the CNN; returns (model, held-out accuracy)."""
    import keras  # pylint: disable=import-outside-toplevel

    from autogan_tf.data import load_digits_data  # pylint: disable=import-outside-toplevel

    images, labels = load_digits_data(INPUT_SIZE)
    x = images.astype(np.float32) / 127.5 - 1.0
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    num_held_out = int(len(x) * _HELD_OUT_FRACTION)
    held_out, train = order[:num_held_out], order[num_held_out:]

    model = _build_model(seed)
    optimizer = keras.optimizers.Adam(learning_rate)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(batch_x, batch_y):
        with tf.GradientTape() as tape:
            loss = loss_fn(batch_y, model(batch_x, training=True)["logits"])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(epochs):
        perm = train[rng.permutation(len(train))]
        for start in range(0, len(perm) - batch_size + 1, batch_size):
            idx = perm[start : start + batch_size]
            step(tf.constant(x[idx]), tf.constant(labels[idx]))

    logits = model(tf.constant(x[held_out]), training=False)["logits"].numpy()
    accuracy = float(np.mean(np.argmax(logits, axis=1) == labels[held_out]))
    return model, accuracy


def build_digits_classifier(
    export_dir: str, seed: int = 0, epochs: int = 10, batch_size: int = 32
) -> dict:
    """Trains the digits CNN and writes it as a SavedModel to ``export_dir``.

    80% of the digits (a seeded split) train it; the other 20% measure its accuracy, which is
    stored in the metadata file next to the model.

    Args:
        export_dir: Output directory (created; must not hold another model).
        seed: Seed of the weight initialisation, the split and the batch order.
        epochs: Training epochs.
        batch_size: Training batch size.

    Returns:
        The metadata dict: ``classifier_id``, ``seed``, ``held_out_accuracy``, ``input_size``,
        ``num_classes``, ``feature_dim``.
    """
    model, accuracy = _train(seed, epochs, batch_size)
    module = _DigitsClassifierModule(model)
    tf.saved_model.save(module, export_dir)
    metadata = {
        "classifier_id": f"{CLASSIFIER_ID_PREFIX}/seed={seed}",
        "seed": seed,
        "epochs": epochs,
        "held_out_accuracy": accuracy,
        "input_size": INPUT_SIZE,
        "num_classes": NUM_CLASSES,
        "feature_dim": FEATURE_DIM,
    }
    with open(os.path.join(export_dir, _METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)
    return metadata


def read_metadata(path: str) -> dict | None:
    """Returns the metadata saved beside a digits classifier, or None if there is none."""
    meta_path = os.path.join(path, _METADATA_FILE)
    if not os.path.isfile(meta_path):
        return None
    with open(meta_path, encoding="utf-8") as f:
        return json.load(f)


def ensure_digits_classifier(cache_dir: str | None = None, seed: int = 0) -> str:
    """Returns the cached digits classifier's SavedModel path, building it if missing.

    The model is written to a temporary directory and moved into place, so concurrent callers
    never see a half-written model.

    Args:
        cache_dir: Cache root; defaults to :func:`default_cache_dir`.
        seed: Training seed.

    Returns:
        The SavedModel directory.
    """
    path = digits_classifier_path(cache_dir, seed)
    if read_metadata(path) is not None:
        return path
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".building-", dir=parent)
    try:
        build_digits_classifier(os.path.join(tmp, "model"), seed=seed)
        try:
            os.rename(os.path.join(tmp, "model"), path)
        except OSError:
            if read_metadata(path) is None:  # Not a concurrent build that won the race.
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
