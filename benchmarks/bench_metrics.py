"""Benchmark: images/second of generation + classifier scoring, and the time of one FID.

    python benchmarks/bench_metrics.py [--source=generator|digits] [--num_images=5000]
        [--inception=/path/to/inception_savedmodel] [--fid_images=50000] [--fid_dim=2048]

* scoring: ``sample_fn(n)`` (a small random conv generator at ``--resolution`` on the seeded
  latents of ``sampling.LatentSampler``, or real digits images) followed by the digits
  classifier (and the Inception network when ``--inception`` gives a local SavedModel), the same
  path ``metrics.score_generator`` and ``evaluate`` take (image checks included); generation
  alone and the classifier alone are timed too;
* FID: ``--fid_images`` x ``--fid_dim`` random activations on each side, through TF-GAN's
  ``frechet_classifier_distance_from_activations`` and through statistics + the closed form.

Prints one JSON object. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from autogan_tf import data, sampling  # noqa: E402
from autogan_tf.eval import metrics  # noqa: E402

SOURCE = flags.DEFINE_enum("source", "generator", ["generator", "digits"], "Image source.")
NUM_IMAGES = flags.DEFINE_integer("num_images", 5000, "Images scored per timing.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 100, "Images per call.")
RESOLUTION = flags.DEFINE_integer("resolution", 16, "Generated image side (power of 2, >= 4).")
INCEPTION = flags.DEFINE_string("inception", None, "Local Inception SavedModel to time as well.")
FID_IMAGES = flags.DEFINE_integer("fid_images", 50000, "Activations per side for the FID timing.")
FID_DIM = flags.DEFINE_integer("fid_dim", 2048, "Activation size for the FID timing.")
CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Cache for the digits classifier.")


def _generator_sample_fn():
    """A small random conv generator: z(128) -> 4x4x64 -> (up, conv 64, ReLU)* -> conv 3, tanh."""
    import keras  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(0)
    layers = [keras.Input((128,)), keras.layers.Dense(4 * 4 * 64), keras.layers.Reshape((4, 4, 64))]
    side = 4
    while side < RESOLUTION.value:
        layers += [
            keras.layers.UpSampling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        ]
        side *= 2
    layers.append(keras.layers.Conv2D(3, 3, padding="same", activation="tanh"))
    model = keras.Sequential(layers)
    generate = tf.function(lambda z: model(z, training=False),
                           input_signature=[tf.TensorSpec([None, 128], tf.float32)])
    return sampling.LatentSampler(generate, 128, seed=0, batch_size=BATCH_SIZE.value)


def _digits_sample_fn():
    images = data.load_images("digits", RESOLUTION.value).astype(np.float32) / 127.5 - 1.0
    rng = np.random.default_rng(0)

    def sample_fn(n):
        return tf.constant(images[rng.integers(0, len(images), n)])

    return sample_fn


def _rate(fn, num_images: int) -> float:
    fn(BATCH_SIZE.value)  # Warm-up: tracing.
    start = time.perf_counter()
    fn(num_images)
    return num_images / (time.perf_counter() - start)


def _bench_classifier(classifier, sample_fn) -> dict:
    n, batch = NUM_IMAGES.value, BATCH_SIZE.value
    fixed = sample_fn(batch)

    def generate_only(count):
        outputs = [sample_fn(min(batch, count - i)) for i in range(0, count, batch)]
        return tf.concat(outputs, 0).numpy()

    def classify_only(count):
        for _ in range(0, count, batch):
            out = classifier(fixed, quantize=True)
        return out["logits"].numpy()

    def both(count):
        return metrics.compute_activations(classifier, sample_fn, count, batch_size=batch)

    report = {
        "classifier": classifier.classifier_id,
        "generation_images_per_s": round(_rate(generate_only, n), 1),
        "classifier_images_per_s": round(_rate(classify_only, n), 1),
        "generation_and_classifier_images_per_s": round(_rate(both, n), 1),
    }
    start = time.perf_counter()  # Warm: everything is traced by now.
    scores = metrics.score_generator(sample_fn, n, classifier, batch_size=batch)
    report["score_generator_s"] = round(time.perf_counter() - start, 3)
    report["is_mean"] = round(scores["is_mean"], 4)
    return report


def _bench_fid() -> dict:
    rng = np.random.default_rng(0)
    n, d = FID_IMAGES.value, FID_DIM.value
    act_a = rng.standard_normal((n, d), dtype=np.float32)
    act_b = rng.standard_normal((n, d), dtype=np.float32) * 1.1 + 0.1
    start = time.perf_counter()
    fid_tfgan = metrics.frechet_distance(act_a, act_b)
    tfgan_s = time.perf_counter() - start
    start = time.perf_counter()
    stats_a, stats_b = metrics.compute_statistics(act_a), metrics.compute_statistics(act_b)
    stats_s = time.perf_counter() - start
    start = time.perf_counter()
    fid_stats = metrics.frechet_distance(stats_a, stats_b)
    closed_s = time.perf_counter() - start
    return {
        "activations": [n, d],
        "tfgan_from_activations_s": round(tfgan_s, 2),
        "statistics_s": round(stats_s, 2),
        "closed_form_from_statistics_s": round(closed_s, 2),
        "fid_tfgan": round(fid_tfgan, 4),
        "fid_closed_form": round(fid_stats, 4),
    }


def main(argv):
    del argv
    sample_fn = _generator_sample_fn() if SOURCE.value == "generator" else _digits_sample_fn()
    report = {
        "source": SOURCE.value,
        "resolution": RESOLUTION.value,
        "num_images": NUM_IMAGES.value,
        "batch_size": BATCH_SIZE.value,
        "cpu_threads": os.cpu_count(),
        "devices": [dev.device_type for dev in tf.config.list_physical_devices()],
    }
    metrics.inception_score(np.zeros((10, 2)))  # Import TF-GAN outside the timings.
    digits = metrics.load_classifier("digits", CACHE_DIR.value)
    report["digits"] = _bench_classifier(digits, sample_fn)
    if INCEPTION.value:
        report["inception"] = _bench_classifier(metrics.load_classifier(INCEPTION.value), sample_fn)
    report["fid"] = _bench_fid()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    app.run(main)
