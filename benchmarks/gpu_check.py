"""Speed check for a GPU (or, with --tiny, any CPU): figures, a mock search, a projection.

    python benchmarks/gpu_check.py [--tiny] [--out_dir=DIR] [--xla_timeout=240]
        [--train_fraction=0.6] [--skip_steps] [--skip_search]
    bash benchmarks/gpu_check.sh [--tiny]          # the same, plus gpu_mirrored.sh if present

Prints one JSON object with:

* `device`: what TensorFlow sees and what `--precision=auto` / `--xla=auto` resolve to;
* `steps`: the search iteration (1 D + 1 G, supernet at 32 px) and the derived iteration
  (5 D + 1 G + EMA, autogan_cifar10_a) in fp32, bf16 and bf16 with XLA, each in its own process
  (`benchmarks/bench_steps.py`; an XLA figure that compiles longer than --xla_timeout is
  reported as such), with the supernet's trace and first-iteration (compile) seconds; the
  derived iteration and generation also with the models' plain op order (`+unfolded`: no
  folded kernels, `bench_steps.py --fold=off`), since folding was measured on CPUs only;
* `generation`: derived-generator images/s (batch 100) in fp32 and bf16;
* `search_stages`: per stage (8, 16, 32 px) the seconds of one D step and one G step as the
  search loop runs them (one call each, loss read back), in the auto precision;
* `reward`: images/s of a child's reward (supernet generation at 32 px, then a classifier with
  the Inception interface at 299 px: an untrained Keras InceptionV3, 2048-d pool_3 and 1008
  logits, the FLOPs of TF-GAN's network; --tiny: a small conv net);
* `mock_search`: `python -m autogan_tf.search` end to end on synthetic CIFAR-10-shaped data
  (32x32 uint8 .npz) with a SavedModel classifier of the Inception interface; its wall time;
* `mirrored`: the JSON lines of benchmarks/gpu_mirrored.sh (data-parallel check) when that
  file exists, else why it was skipped;
* `projection`: the paper's CIFAR-10 search (configs/search_cifar10.cfg) in hours, from the
  measured per-step and per-image costs; `projection.assumptions` states what is assumed.

--tiny scales models and batches down and uses the small classifier, so the whole check runs
on a CPU in a few minutes (its projection then describes tiny models and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

# The paper's search (SPEC section 4, configs/search_cifar10.cfg).
PAPER = {"iterations_per_stage": (15, 20, 30), "shared_epochs": 15, "train_images": 50_000,
         "d_batch": 64, "n_critic": 5, "controller_steps": 30, "reward_images": 5000,
         "num_candidates": 10, "policy_eval_archs": 20, "paper_gpu_hours": 43.0,
         "paper_gpu_hours_without_reset": 72.0, "goal_hours_one_h200": 2.0}


def _json_lines(text: str) -> list:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def _sub(cmd, timeout, env=None) -> dict:
    """Runs a command; returns {'lines': JSON lines, 'seconds', 'error'?}."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return {"lines": _json_lines(out), "seconds": round(time.perf_counter() - t0, 1),
                "error": f"timed out after {timeout} s"}
    res = {"lines": _json_lines(p.stdout), "seconds": round(time.perf_counter() - t0, 1)}
    if p.returncode != 0:
        res["error"] = f"exit {p.returncode}: " + " | ".join(p.stderr.strip().splitlines()[-4:])
    return res


def step_figures(args) -> dict:
    """bench_steps.py in subprocesses: plain figures, then each XLA figure under a timeout."""
    bench = [sys.executable, os.path.join(HERE, "bench_steps.py")]
    scale = ["--scale=0.125"] if args.tiny else []
    reps = ["--repeats=2"] if args.tiny else ["--repeats=5"]
    n_img = "--num_images=200" if args.tiny else "--num_images=5000"
    runs = {"plain": _sub(bench + ["--which=search,derived,generation", "--precision=fp32,bf16",
                                   n_img] + scale + reps, args.step_timeout),
            "unfolded": _sub(bench + ["--which=derived,generation", "--precision=fp32,bf16",
                                      "--fold=off", n_img] + scale + reps, args.step_timeout)}
    xla_figures = ("derived",) if args.tiny else ("derived", "search")
    for which in xla_figures:
        runs[f"xla_{which}"] = _sub(bench + [f"--which={which}", "--precision=bf16", "--xla"]
                                    + scale + reps, args.xla_timeout)
    if args.tiny:
        runs["xla_search"] = {"lines": [], "error": "skipped with --tiny: XLA compiles the "
                              "supernet's step (every branch) for minutes on a CPU"}
    out = {"search_iteration": {}, "derived_iteration": {}, "generation": {}, "errors": {}}
    for name, run in runs.items():
        if "error" in run:
            out["errors"][name] = run["error"]
        for r in run["lines"]:
            key = (r["precision"] + ("+xla" if r.get("xla") else "")
                   + ("" if r.get("folded", True) else "+unfolded"))
            if r["benchmark"] == "inference":
                out["generation"][key] = {"images_per_second": r["images_per_second"]}
            else:
                out[r["benchmark"]][key] = {
                    k: r[k] for k in ("seconds_per_iteration", "seconds_min",
                                      "first_iteration_seconds", "trace_seconds",
                                      "generated_images_per_second") if k in r}
    for which in ("search", "derived"):
        if f"{which}_iteration" in out and "bf16+xla" not in out[f"{which}_iteration"]:
            out[f"{which}_iteration"]["bf16+xla"] = {
                "error": runs[f"xla_{which}"].get("error", "no figure")}
    return out


# ----- in-process measurements ------------------------------------------------------------
def _sizes(tiny: bool) -> dict:
    if tiny:
        return {"gf": 16, "df": 8, "d_batch": 8, "g_batch": 16, "latent": 128,
                "reward_batch": 20, "reward_images": 60}
    return {"gf": 128, "df": 64, "d_batch": 64, "g_batch": 128, "latent": 128,
            "reward_batch": 100, "reward_images": 1000}


def search_stage_costs(choice, sizes, repeats: int, stages=(0, 1, 2)) -> dict:
    """Per stage: seconds of one D step and one G step as the tuner's loop calls them.

    Stages not in `stages` get the figures of the last measured one (the dearest)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from autogan_tf.nn.discriminator import Discriminator
    from autogan_tf.nn.generators import SharedGenerator
    from autogan_tf.training.gan import GANConfig, GANTrainer
    from benchmarks.bench_steps import random_arch

    g = SharedGenerator(sizes["latent"], sizes["gf"], 4, stage=0, dtype=choice.policy)
    d = Discriminator(sizes["df"], stage=0, input_resolution=32, dtype=choice.policy)
    cfg = GANConfig(d_batch_size=sizes["d_batch"], g_batch_size=sizes["g_batch"], n_critic=5)
    trainer = GANTrainer(g, d, cfg)
    rng = np.random.default_rng(0)
    out = {}
    for stage in stages:
        t0 = time.perf_counter()
        trainer.set_stage(stage)
        res = 4 * 2 ** (stage + 1)
        real = tf.random.uniform([sizes["d_batch"], res, res, 3], -1, 1)
        float(trainer.d_step(real, random_arch(rng)))
        float(trainer.g_step(random_arch(rng)))
        first = time.perf_counter() - t0
        t_d, t_g = [], []
        for _ in range(repeats):
            a = random_arch(rng)
            t1 = time.perf_counter()
            float(trainer.d_step(real, a))
            t2 = time.perf_counter()
            float(trainer.g_step(a))
            t_d.append(t2 - t1)
            t_g.append(time.perf_counter() - t2)
        out[str(stage)] = {"resolution": res, "d_step_seconds": round(statistics.median(t_d), 5),
                           "g_step_seconds": round(statistics.median(t_g), 5),
                           "trace_and_first_steps_seconds": round(first, 2)}
    last = out[str(stages[-1])]
    for stage in range(3):
        if str(stage) not in out:
            out[str(stage)] = dict(last, resolution=4 * 2 ** (stage + 1),
                                   measured_at_stage=stages[-1])
    return {"precision": choice.precision, "stages": out, "_trainer": trainer}


def inception_like(tiny: bool):
    """A classifier function with TF-GAN Inception's interface at 299x299 (untrained)."""
    import keras  # pylint: disable=import-outside-toplevel

    inp = keras.Input((299, 299, 3))
    if tiny:
        x = inp
        for c in (8, 16, 32):
            x = keras.layers.Conv2D(c, 3, strides=3, activation="relu")(x)
        pool = keras.layers.Dense(2048)(keras.layers.GlobalAveragePooling2D()(x))
    else:
        base = keras.applications.InceptionV3(include_top=False, weights=None,
                                              input_tensor=inp, pooling="avg")
        pool = base.output
    logits = keras.layers.Dense(1008)(pool)
    return keras.Model(inp, {"logits": logits, "pool_3": pool})


def save_classifier(model, path: str) -> str:
    """Writes `model` as a SavedModel whose call returns {'logits', 'pool_3'} (299x299 input)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    class _Module(tf.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        @tf.function(input_signature=[tf.TensorSpec([None, 299, 299, 3], tf.float32)])
        def __call__(self, images):
            return self.m(images, training=False)

    tf.saved_model.save(_Module(model), path)
    return path


def reward_throughput(trainer, classifier_model, sizes) -> dict:
    """Images/s of a child's reward at 32 px through `metrics.score_generator`."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from autogan_tf.eval import metrics
    from autogan_tf.sampling import LatentSampler
    from benchmarks.bench_steps import random_arch

    classifier = metrics.Classifier(lambda x: classifier_model(x, training=False),
                                    "inception-shaped-untrained", 299)
    g = trainer.generator
    generate = tf.function(lambda z, arch: g(z, arch, training=False), autograph=False)
    arch = tf.constant(random_arch(np.random.default_rng(1)), tf.int32)
    n, batch = sizes["reward_images"], sizes["reward_batch"]

    def sampler(seed):
        return LatentSampler(lambda z: generate(z, arch), sizes["latent"], seed, batch)

    metrics.score_generator(sampler(0), batch, classifier, splits=1, batch_size=batch)  # trace
    t0 = time.perf_counter()
    metrics.score_generator(sampler(1), n, classifier, splits=10, batch_size=batch)
    total = time.perf_counter() - t0
    s = sampler(2)
    s(batch)
    t0 = time.perf_counter()
    for _ in range(max(1, n // batch)):
        np.asarray(s(batch))
    gen = time.perf_counter() - t0
    return {"images": n, "batch_size": batch, "images_per_second": round(n / total, 1),
            "generation_images_per_second": round(max(1, n // batch) * batch / gen, 1),
            "seconds_per_5000_image_reward": round(5000 * total / n, 2),
            "classifier": "small conv net (--tiny)" if sizes["gf"] < 128 else
            "untrained Keras InceptionV3, 299 px"}


def mock_search(args, out_dir: str, classifier_path: str) -> dict:
    """The search binary end to end on synthetic 32x32 data (CIFAR-10 shapes)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    n = 512 if args.tiny else 5000
    data = os.path.join(out_dir, "mock_cifar10.npz")
    rng = np.random.default_rng(0)
    np.savez(data, images=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    sz = _sizes(args.tiny)
    flags = [f"--dataset={data}", f"--classifier={classifier_path}", "--bottom_width=4",
             f"--gf_dim={sz['gf']}", f"--df_dim={sz['df']}", f"--d_batch_size={sz['d_batch']}",
             f"--g_batch_size={sz['g_batch']}", "--n_critic=5", "--iterations_per_stage=1,1,1",
             # --tiny: single-level (all three cells at 32 px from the start: one trace of the
             # supernet's steps instead of one per stage)
             *(["--nomlas"] if args.tiny else []),
             "--controller_steps=2", "--num_candidates=2", "--top_k=1",
             f"--max_shared_steps={10 if args.tiny else 100}", "--shared_epochs=1",
             f"--reward_images={40 if args.tiny else 500}", "--reward_splits=2",
             "--policy_eval_archs=0", "--noprogress", f"--run_dir={out_dir}/search_run",
             f"--cache_dir={out_dir}/cache", "--seed=0"]
    run = _sub([sys.executable, "-m", "autogan_tf.search"] + flags, args.search_timeout)
    out = {"seconds": run["seconds"], "images": n, "flags": flags[2:]}
    summary = [x for x in run["lines"] if "top_architectures_file" in x]
    if summary and "error" not in run:
        s = summary[-1]
        out.update(ok=True, d_steps=s.get("d_steps"), g_steps=s.get("g_steps"),
                   search_seconds=s.get("seconds"),
                   top=(s.get("architectures") or [None])[0])
    else:
        out.update(ok=False, error=run.get("error", "no summary line"))
    return out


def mirrored_check(args) -> dict:
    """benchmarks/gpu_mirrored.sh (data-parallel check) if it exists: its JSON lines."""
    script = args.mirrored_script
    if not script or not os.path.isfile(script):
        return {"skipped": f"{script} not found"}
    run = _sub(["bash", script] + (["--tiny"] if args.tiny else []), args.mirrored_timeout,
               env={"GPU_CHECK_TINY": "1" if args.tiny else "0"})
    out = {"seconds": run["seconds"], "results": run["lines"]}
    if "error" in run:
        out["error"] = run["error"]
    return out


def projection(stages: dict, reward: dict, train_fraction: float) -> dict:
    """The paper's search in hours from per-step and per-image costs."""
    p = PAPER
    d_per_iter = p["shared_epochs"] * (p["train_images"] // p["d_batch"])
    train_s = 0.0
    for s, iters in enumerate(p["iterations_per_stage"]):
        st = stages[str(s)]
        per_d = st["d_step_seconds"] + st["g_step_seconds"] / p["n_critic"]
        train_s += iters * d_per_iter * train_fraction * per_d
    n_iter = sum(p["iterations_per_stage"])
    controller_imgs = n_iter * p["controller_steps"] * p["reward_images"]
    beam_imgs = 3 * p["num_candidates"] * p["reward_images"]
    policy_imgs = 3 * 2 * p["policy_eval_archs"] * p["reward_images"]
    reward_s = (controller_imgs + beam_imgs + policy_imgs) / reward["images_per_second"]
    return {"hours": round((train_s + reward_s) / 3600, 2),
            "training_hours": round(train_s / 3600, 2),
            "reward_hours": round(reward_s / 3600, 2),
            "d_steps": int(n_iter * d_per_iter * train_fraction),
            "reward_images": controller_imgs + beam_imgs + policy_imgs,
            "train_fraction": train_fraction}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", "--cpu", action="store_true",
                    help="small models, batches and classifier (runs on a CPU)")
    ap.add_argument("--out_dir", default=None, help="work files (default: a temporary dir)")
    ap.add_argument("--skip_steps", action="store_true", help="skip the bench_steps figures")
    ap.add_argument("--skip_search", action="store_true", help="skip the mock search")
    ap.add_argument("--step_timeout", type=int, default=300)
    ap.add_argument("--xla_timeout", type=int, default=240)
    ap.add_argument("--search_timeout", type=int, default=420)
    ap.add_argument("--mirrored_script", default=os.path.join(HERE, "gpu_mirrored.sh"),
                    help="the data-parallel check, run when the file exists")
    ap.add_argument("--mirrored_timeout", type=int, default=240)
    ap.add_argument("--train_fraction", type=float, default=0.6,
                    help="share of the 15-epoch budget trained on average with dynamic reset")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    out_dir = args.out_dir or tempfile.mkdtemp(prefix="autogan_gpu_check_")
    os.makedirs(out_dir, exist_ok=True)

    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from autogan_tf.training import precision

    device = precision.detect_device()
    supernet = precision.resolve("auto", "auto", precision.SUPERNET, device)
    derived = precision.resolve("auto", "auto", precision.DERIVED, device)
    report = {"tiny": args.tiny, "device": {
        "kind": device.kind, "description": device.describe(),
        "gpus": [g.name for g in device.gpus], "tensorflow": tf.__version__,
        "auto_supernet": supernet.line("search"), "auto_derived": derived.line("training")}}
    if not args.skip_steps:
        report["steps"] = step_figures(args)
    sizes = _sizes(args.tiny)
    costs = search_stage_costs(supernet, sizes, 5 if args.tiny else 10,
                               (2,) if args.tiny else (0, 1, 2))
    trainer = costs.pop("_trainer")
    report["search_stages"] = costs
    model = inception_like(args.tiny)
    report["reward"] = reward_throughput(trainer, model, sizes)
    if not args.skip_search:
        small = save_classifier(inception_like(True), os.path.join(out_dir, "classifier"))
        report["mock_search"] = mock_search(args, out_dir, small)
    report["mirrored"] = mirrored_check(args)
    fraction = args.train_fraction
    proj = {
        "with_dynamic_reset": projection(costs["stages"], report["reward"], fraction),
        "without_reset_full_budget": projection(costs["stages"], report["reward"], 1.0),
        "assumptions": [
            "65 iterations (15/20/30 per stage at 8/16/32 px), each up to 15 epochs of "
            "50,000/64 = 781 D steps (11,715 D and 2,343 G steps)",
            f"dynamic reset trains {fraction:.0%} of that budget on average (the paper: 43 "
            "GPU-hours with reset vs 72 without); 100% gives the upper bound",
            "per D step: the measured D step plus a fifth of the measured G step of its "
            "stage, in the auto precision, at the measured sizes",
            "rewards: 65 x 30 controller steps x 5,000 images, 3 grows x M=10 candidates x "
            "5,000 images and the policy check (2 x 20 architectures x 5,000 images per "
            "stage), all at the measured stage-2 reward rate (generation at 32 px + the "
            "299 px classifier)",
            "controller updates, checkpoints, sample grids and data loading are not counted",
            "--tiny: tiny models and a small classifier, stage 2's step costs for every "
            "stage, so the hours say nothing about the real search" if args.tiny else
            "full sizes (gf 128, df 64, batches 64/128)"],
        "paper_gpu_hours": PAPER["paper_gpu_hours"], "goal_hours_one_h200":
            PAPER["goal_hours_one_h200"]}
    report["projection"] = proj
    report["seconds"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(report, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
