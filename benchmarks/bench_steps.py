"""Benchmark: seconds and images/second of the search and training iterations.

    python benchmarks/bench_steps.py [--precision=fp32,bf16] [--repeats=3] [--which=search,derived]

* search iteration: 1 D step + 1 G step of the supernet (gf 128, df 64) at 32 px,
  D batch 64, G batch 128, a new random architecture each iteration;
* derived iteration: 5 D steps + 1 G step + EMA of autogan_cifar10_a (gf 256, df 128).

Prints one JSON object per configuration. Not a test: numbers depend on the machine.
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

from autogan_tf import search_space as ss  # noqa: E402
from autogan_tf.nn.discriminator import Discriminator  # noqa: E402
from autogan_tf.training.gan import GANConfig, GANTrainer, precision_policy  # noqa: E402
from autogan_tf.nn.generators import DerivedGenerator, SharedGenerator  # noqa: E402

FLAGS = flags.DEFINE_list("precision", ["fp32", "bf16"], "fp32 and/or bf16.")
WHICH = flags.DEFINE_list("which", ["search", "derived"], "search and/or derived.")
REPEATS = flags.DEFINE_integer("repeats", 3, "Timed iterations after one warm-up.")
XLA = flags.DEFINE_bool("xla", False, "jit_compile the steps.")
SCALE = flags.DEFINE_float("scale", 1.0, "Scale channels and batches down (smoke runs).")


def _random_arch(rng):
    return [int(rng.integers(t.size)) for toks in ss.CELL_TOKENS for t in toks]


def bench(which: str, precision: str) -> dict:
    dtype = precision_policy(precision == "bf16")
    s = SCALE.value
    d_batch, g_batch = max(2, int(64 * s)), max(2, int(128 * s))
    rng = np.random.default_rng(0)
    if which == "search":
        g = SharedGenerator(channels=max(8, int(128 * s)), dtype=dtype)
        d = Discriminator(max(8, int(64 * s)), dtype=dtype)
        cfg = GANConfig(d_batch_size=d_batch, g_batch_size=g_batch, n_critic=1,
                        jit_compile=XLA.value)
        trainer = GANTrainer(g, d, cfg)
    else:
        arch = "autogan_cifar10_a"
        gf, df = max(8, int(256 * s)), max(8, int(128 * s))
        g = DerivedGenerator(arch, channels=gf, dtype=dtype)
        ema = DerivedGenerator(arch, channels=gf, dtype=dtype)
        d = Discriminator(df, dtype=dtype)
        cfg = GANConfig(d_batch_size=d_batch, g_batch_size=g_batch, n_critic=5, ema_decay=0.999,
                        jit_compile=XLA.value)
        trainer = GANTrainer(g, d, cfg, ema_generator=ema)
    real = [tf.random.uniform([d_batch, 32, 32, 3], -1, 1) for _ in range(cfg.n_critic)]

    def iteration():
        archs = [_random_arch(rng) for _ in range(cfg.n_critic)] if which == "search" else None
        return trainer.train_iteration(real, archs)

    t0 = time.perf_counter()
    iteration()
    warmup = time.perf_counter() - t0
    times = []
    for _ in range(REPEATS.value):
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    sec = float(np.median(times))
    images = cfg.n_critic * d_batch + g_batch  # images generated per iteration
    return {"benchmark": f"{which}_iteration", "precision": precision, "xla": XLA.value,
            "scale": s, "seconds_per_iteration": round(sec, 3),
            "seconds_min": round(min(times), 3), "generated_images_per_second":
            round(images / sec, 1), "first_iteration_seconds": round(warmup, 1),
            "repeats": REPEATS.value, "threads": os.cpu_count()}


def main(argv):
    del argv
    for which in WHICH.value:
        for precision in FLAGS.value:
            print(json.dumps(bench(which, precision)), flush=True)


if __name__ == "__main__":
    app.run(main)
