"""Benchmark: the project's speed figures, with the work definitions of the PyTorch anchor.

    python benchmarks/bench_steps.py [--which=search,derived,generation] [--precision=fp32,bf16]
        [--fold=on,off] [--repeats=N] [--xla] [--num_images=10000] [--stage=2] [--scale=1.0]

* search iteration: 1 D step + 1 G step of the supernet (gf 128, df 64) at `--stage` (2: 32 px,
  all three cells), D batch 64, G batch 128, a new random architecture each iteration (drawn
  from `np.random.default_rng(0)`, as ../shared/bench/torch_anchor.py draws them);
* derived iteration: 5 D steps + 1 G step + EMA 0.999 of autogan_cifar10_a (gf 256, df 128);
* generation: the derived generator in evaluation mode, `--num_images` in batches of 100.

`--precision` takes fp32, bf16 and auto (what `--precision=auto` picks on this machine).
`--fold=off` times the plain graph of the models (`autogan_tf.nn.layers.unfolded`: no folded
kernels, TensorFlow's own conv gradients), `--fold=on,off` both, one after the other, for the
speed-up of those rewrites. Each
figure is the median of the timed repeats (default: search 5, derived 3, generation 1 pass)
after one untimed iteration; `trace_seconds` is the Python trace of the
iteration's function; `first_iteration_seconds` is its first run after that (graph
optimisation or XLA compilation, and one iteration), and `compile_seconds` that less a timed
iteration. One JSON line per figure. Not a test: numbers
depend on the machine (compare within one run, as ratios: benchmarks/compare_speed.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from autogan_tf import search_space as ss  # noqa: E402
from autogan_tf.nn import layers as L  # noqa: E402
from autogan_tf.nn.discriminator import Discriminator  # noqa: E402
from autogan_tf.nn.generators import DerivedGenerator, SharedGenerator  # noqa: E402
from autogan_tf.training import precision as precision_lib  # noqa: E402
from autogan_tf.training.gan import GANConfig, GANTrainer  # noqa: E402

DEFAULT_REPEATS = {"search": 5, "derived": 3, "generation": 1}
ARCH = "autogan_cifar10_a"


def random_arch(rng) -> list:
    """One architecture, token by token, as the PyTorch anchor draws them."""
    return [int(rng.integers(t.size)) for toks in ss.CELL_TOKENS for t in toks]


def resolve_precision(precision: str, workload: str) -> str:
    """'fp32' or 'bf16' ('auto': this machine's choice for the workload)."""
    if precision == "auto":
        return precision_lib.resolve("auto", "off", workload).precision
    return precision


def _dims(scale: float) -> dict:
    s = float(scale)
    return {"d_batch": max(2, int(64 * s)), "g_batch": max(2, int(128 * s)),
            "gf_search": max(8, int(128 * s)), "df_search": max(8, int(64 * s)),
            "gf": max(8, int(256 * s)), "df": max(8, int(128 * s))}


def _median_report(name, times, first, extra) -> dict:
    sec = statistics.median(times)
    out = {"benchmark": name, "seconds_per_iteration": round(sec, 4),
           "seconds_min": round(min(times), 4), "repeats": len(times),
           "first_iteration_seconds": round(first, 2)}
    out.update(extra(sec))
    out.update(threads=os.cpu_count(), devices=sorted(
        {d.device_type for d in tf.config.list_physical_devices()}))
    return out


def make_trainer(which: str, precision: str, xla: bool = False, scale: float = 1.0,
                 stage: int = 2):
    """(trainer, real batches, architecture sampler or None) of a figure's work."""
    dtype = precision_lib.precision_policy(precision == "bf16")
    d = _dims(scale)
    if which == "search":
        res = 4 * 2 ** (stage + 1)
        g = SharedGenerator(channels=d["gf_search"], stage=stage, dtype=dtype)
        disc = Discriminator(d["df_search"], stage=stage, dtype=dtype)
        cfg = GANConfig(d_batch_size=d["d_batch"], g_batch_size=d["g_batch"], n_critic=1,
                        jit_compile=xla)
        trainer = GANTrainer(g, disc, cfg)
        rng = np.random.default_rng(0)
        sampler = lambda: [random_arch(rng)]  # noqa: E731
    else:
        res = 32
        g = DerivedGenerator(ARCH, channels=d["gf"], dtype=dtype)
        ema = DerivedGenerator(ARCH, channels=d["gf"], dtype=dtype)
        disc = Discriminator(d["df"], dtype=dtype)
        cfg = GANConfig(d_batch_size=d["d_batch"], g_batch_size=d["g_batch"], n_critic=5,
                        ema_decay=0.999, jit_compile=xla)
        trainer = GANTrainer(g, disc, cfg, ema_generator=ema)
        sampler = None
    real = [tf.random.uniform([d["d_batch"], res, res, 3], -1, 1) for _ in range(cfg.n_critic)]
    return trainer, real, sampler


def bench_iteration(which: str, precision: str, xla: bool = False, scale: float = 1.0,
                    repeats: int | None = None, stage: int = 2) -> dict:
    """One search or derived iteration: its median seconds and images per second."""
    trainer, real, sampler = make_trainer(which, precision, xla, scale, stage)
    cfg = trainer.config

    def iteration():
        return trainer.train_iteration(real, sampler() if sampler else None)

    t0 = time.perf_counter()
    # Traced with an architecture of its own, so that the untimed first iteration takes the
    # sampler's first draw and the timed ones the next: the anchor's sequence (it warms up
    # on draw 0 and times draws 1..N), hence the same architectures on both sides.
    trace_arch = [random_arch(np.random.default_rng(1))] if sampler else [None] * cfg.n_critic
    trainer.iteration_fn.get_concrete_function(*trainer.iteration_args(real, trace_arch))
    traced = time.perf_counter() - t0
    t0 = time.perf_counter()
    iteration()
    first = time.perf_counter() - t0
    trace = trainer.iteration_fn.experimental_get_tracing_count()
    times = []
    for _ in range(repeats or DEFAULT_REPEATS[which]):
        t0 = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - t0)
    images = cfg.n_critic * cfg.d_batch_size + cfg.g_batch_size  # generated per iteration
    assert trainer.iteration_fn.experimental_get_tracing_count() == trace == 1
    return _median_report(f"{which}_iteration", times, first, lambda sec: {
        "precision": precision, "xla": bool(xla), "scale": scale,
        **({"stage": stage} if which == "search" else {}), "trace_seconds": round(traced, 2),
        "compile_seconds": round(max(0.0, first - sec), 2),
        "generated_images_per_second": round(images / sec, 1),
        "real_images_per_second": round(cfg.n_critic * cfg.d_batch_size / sec, 1)})


def make_generate(precision: str, scale: float = 1.0, xla: bool = False):
    """The derived generator's compiled inference function (latents -> images)."""
    dtype = precision_lib.precision_policy(precision == "bf16")
    g = DerivedGenerator(ARCH, channels=_dims(scale)["gf"], dtype=dtype)
    return tf.function(lambda z: g(z, training=False), jit_compile=xla, autograph=False)


def bench_generation(precision: str, num_images: int = 10_000, batch_size: int = 100,
                     scale: float = 1.0, repeats: int | None = None, xla: bool = False) -> dict:
    """Images per second of the derived generator in evaluation mode, host arrays out."""
    generate = make_generate(precision, scale, xla)
    rng = np.random.default_rng(0)

    def one_batch(k):
        z = tf.constant(rng.standard_normal((k, 128), dtype=np.float32))
        return generate(z).numpy()

    def one_pass():
        done = 0
        while done < num_images:
            k = min(batch_size, num_images - done)
            one_batch(k)
            done += k

    t0 = time.perf_counter()
    one_batch(batch_size)
    if num_images % batch_size:
        one_batch(num_images % batch_size)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats or DEFAULT_REPEATS["generation"]):
        t0 = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - t0)
    return _median_report("inference", times, first, lambda sec: {
        "precision": precision, "xla": bool(xla), "scale": scale, "num_images": num_images,
        "batch_size": batch_size, "images_per_second": round(num_images / sec, 1)})


def main(argv=None) -> None:
    import argparse  # pylint: disable=import-outside-toplevel

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--which", default="search,derived")
    p.add_argument("--precision", default="fp32,bf16")
    p.add_argument("--fold", default="on", help="on, off or on,off: folded kernels")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--xla", action="store_true", help="jit_compile the steps")
    p.add_argument("--scale", type=float, default=1.0, help="scale channels and batches")
    p.add_argument("--stage", type=int, default=2, choices=[0, 1, 2])
    p.add_argument("--num_images", type=int, default=10_000)
    p.add_argument("--batch_size", type=int, default=100)
    args = p.parse_args(argv)
    which = [w for w in args.which.split(",") if w]
    bad = set(which) - set(DEFAULT_REPEATS)
    if bad:
        p.error(f"unknown --which {sorted(bad)}")
    folds = [f for f in args.fold.split(",") if f]
    if not folds or set(folds) - {"on", "off"}:
        p.error(f"--fold takes on, off or on,off; got {args.fold!r}")
    for w, fold in ((w, f) for w in which for f in folds):
        workload = {"search": precision_lib.SUPERNET, "derived": precision_lib.DERIVED,
                    "generation": precision_lib.GENERATION}[w]
        for prec in [q for q in args.precision.split(",") if q]:
            if prec not in precision_lib.PRECISIONS:
                p.error(f"unknown --precision {prec}")
            resolved = resolve_precision(prec, workload)
            with contextlib.nullcontext() if fold == "on" else L.unfolded():  # traced inside
                if w == "generation":
                    out = bench_generation(resolved, args.num_images, args.batch_size,
                                           args.scale, args.repeats, args.xla)
                else:
                    out = bench_iteration(w, resolved, args.xla, args.scale, args.repeats,
                                          args.stage)
            out["folded"] = fold == "on"
            if prec == "auto":
                out["precision_requested"] = "auto"
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
