"""Data-parallel check: a short `train` and `search` under `--strategy=mirrored` against the
same runs on one device; one JSON line per check.

    python benchmarks/gpu_mirrored.py [--tiny|--medium] [--which=train,search] [--out_dir=DIR]
    bash benchmarks/gpu_mirrored.sh [--tiny]

Replicas: all local GPUs; on a host without GPUs, 2 logical CPU devices (`--num_cpu_replicas=2`,
tiny sizes). Each check runs the binary twice on the same global batches (one device, then
mirrored) and reports:

* `replicas`, `device` (`gpu` or `cpu`), `size` (`tiny`: configs/train_tiny.cfg and
  configs/search_tiny.cfg, as the tests run them; `medium`: 32 px, wider models, per-replica
  batches of 32 (D) and 64 (G), more steps);
* `seconds_per_iteration` of each run (training: per generator iteration; search: per D step of
  the second search iteration, its G steps included), from the wall times TensorBoard records
  with the losses, after the steps are traced; `speedup` = single / mirrored;
* `losses_matched`: the losses of the first `steps_compared` steps agree within `rtol` of
  max(|loss|, 1) (hinge losses are of order 1 and cross 0); `max_rel_diff` says by how much;
  `wall_seconds` of each process.

On GPUs the runs use `NVIDIA_TF32_OVERRIDE=0` (plain fp32: TF32 would make the two runs differ
by about 1e-3 and hide a real mismatch). On a CPU host the two runs of a check run at the same
time (tracing is single-threaded, so the check stays under two minutes on two cores): read its
seconds per iteration as contended (`concurrent` is true). Not a test: figures depend on the
machine; `tests/test_strategy.py` is the test.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Per check: the tiny flags, the loss tags compared and over how many first steps (training:
# generator iterations; search: D steps of the first iteration), and the steps timed per size.
TINY = {
    "train": {"flags": ["--flagfile=configs/train_tiny.cfg"],
              "tags": ("train/d_loss", "train/g_loss")},
    "search": {"flags": ["--flagfile=configs/search_tiny.cfg"], "tags": ("shared/d_loss",)},
}
COMPARED_STEPS = 4
# D steps per search iteration (--max_shared_steps) and generator iterations of a training run.
STEPS = {"tiny": 4, "medium": 12}


def timed_window(check: str, size: str) -> tuple:
    """The logged steps timed: training from iteration 1 (its D and G steps are traced before
    it is logged) to the last; the search over its second iteration (the first traces)."""
    n = STEPS[size]
    return (1, n) if check == "train" else (n + 1, 2 * n)


def medium(check: str, replicas: int) -> list:
    """Flags of the medium size for `replicas` (global batches = per-replica x replicas)."""
    d, g = 32 * replicas, 64 * replicas
    common = ["--bottom_width=4", f"--d_batch_size={d}", f"--g_batch_size={g}",
              "--latent_dim=128"]
    if check == "train":
        return TINY["train"]["flags"] + common + [
            "--gf_dim=128", "--df_dim=128", f"--max_iter={STEPS['medium']}",
            f"--eval_every={STEPS['medium']}", f"--checkpoint_every={STEPS['medium']}",
            "--eval_images=500", "--real_num_images=500"]
    return TINY["search"]["flags"] + common + [
        "--gf_dim=64", "--df_dim=64", f"--max_shared_steps={STEPS['medium']}",
        "--reward_images=200"]


def binary(check: str) -> str:
    return "autogan_tf.train" if check == "train" else "autogan_tf.search"


def tb_scalars(tb_dir: str, tags) -> dict:
    """{tag: {step: (wall_time, value)}} of TensorBoard scalars under `tb_dir`."""
    out = {}
    for path in sorted(glob.glob(os.path.join(tb_dir, "**", "events.out.tfevents.*"),
                                 recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                if v.tag in tags:
                    out.setdefault(v.tag, {})[event.step] = (
                        event.wall_time, float(tf.make_ndarray(v.tensor)))
    return out


def seconds_per_step(series: dict, first: int, last: int):
    """Mean seconds between logged steps `first` and `last` (steps after every trace)."""
    if first not in series or last not in series or last <= first:
        return None
    return round((series[last][0] - series[first][0]) / (last - first), 4)


def start(cmd, env, log_path):
    log = open(log_path, "w")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            text=True), log, time.perf_counter()


def run_check(check: str, args, replicas: int, device: str) -> dict:
    out = {"check": check, "size": args.size, "device": device, "replicas": replicas,
           "strategy": "mirrored", "concurrent": device == "cpu"}
    flags = TINY[check]["flags"] if args.size == "tiny" else medium(check, replicas)
    strategy = ["--strategy=mirrored"] + (["--num_cpu_replicas=2"] if device == "cpu" else [])
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    if device == "gpu":
        env["NVIDIA_TF32_OVERRIDE"] = "0"
    runs, results = {}, {}
    for name, extra in (("single", []), ("mirrored", strategy)):
        run_dir = os.path.join(args.out_dir, f"{check}_{name}")
        cmd = [sys.executable, "-m", binary(check), *flags, f"--run_dir={run_dir}",
               f"--cache_dir={args.cache_dir}", "--overwrite", *extra]
        runs[name] = (run_dir,) + start(cmd, env, run_dir + ".log")
        if not out["concurrent"]:
            results[name] = wait(runs[name], args.timeout)
    for name, run in runs.items():
        if name not in results:
            results[name] = wait(run, args.timeout)
    walls = {name: wall for name, (_, wall) in results.items()}
    failed = []
    for name, (rc, _) in results.items():
        if rc != 0:
            with open(runs[name][0] + ".log") as f:
                tail = f.read().strip().splitlines()[-3:]
            failed.append(f"{name}: exit {rc}: {' | '.join(tail)}")
    out["wall_seconds"] = walls
    if failed:
        out.update(losses_matched=False, error="; ".join(failed))
        return out
    tags, steps = TINY[check]["tags"], COMPARED_STEPS
    tb = {name: tb_scalars(os.path.join(run[0], "search", "tb") if check == "search"
                           else os.path.join(run[0], "tb"), tags)
          for name, run in runs.items()}
    spi = {name: seconds_per_step(tb[name].get(tags[0], {}), *timed_window(check, args.size))
           for name in runs}
    out["seconds_per_iteration"] = spi
    if spi["single"] and spi["mirrored"]:
        out["speedup"] = round(spi["single"] / spi["mirrored"], 3)
    diffs = []
    for tag in tags:
        a = np.array([tb["single"][tag][s][1] for s in range(1, steps + 1)])
        b = np.array([tb["mirrored"][tag][s][1] for s in range(1, steps + 1)])
        # hinge losses are of order 1 and may cross 0: relative to max(|loss|, 1)
        diffs.append(float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1.0))))
    out.update(steps_compared=steps, rtol=args.rtol, max_rel_diff=float(f"{max(diffs):.3g}"),
               losses_matched=max(diffs) <= args.rtol)
    return out


def wait(run, timeout) -> tuple:
    """(exit status, wall seconds) of a started run; killed after `timeout` seconds."""
    proc, log, t0 = run[1], run[2], run[3]
    try:
        rc = proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - t0)))
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    log.close()
    return rc, round(time.perf_counter() - t0, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (default without GPUs)")
    ap.add_argument("--medium", action="store_true", help="medium sizes also without GPUs")
    ap.add_argument("--which", default="train,search", help="train and/or search")
    ap.add_argument("--out_dir", default=None, help="where the runs go (default: a temp dir)")
    ap.add_argument("--cache_dir", default=None, help="digits classifier cache (default: the "
                    "binaries' default)")
    ap.add_argument("--rtol", type=float, default=1e-3, help="loss agreement for a match")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run")
    args = ap.parse_args()
    if os.environ.get("GPU_CHECK_TINY") == "1":
        args.tiny = True
    gpus = len(tf.config.list_physical_devices("GPU"))
    device = "gpu" if gpus else "cpu"
    replicas = gpus if gpus else 2
    args.size = "tiny" if args.tiny or not (gpus or args.medium) else "medium"
    from autogan_tf.eval import digits_classifier  # noqa: E402 (after the device query)
    args.cache_dir = args.cache_dir or digits_classifier.default_cache_dir()
    digits_classifier.ensure_digits_classifier(args.cache_dir)  # once, not in each run
    tmp = None
    if args.out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="gpu_mirrored_")
        args.out_dir = tmp.name
    os.makedirs(args.out_dir, exist_ok=True)
    for check in [c.strip() for c in args.which.split(",") if c.strip()]:
        if check not in TINY:
            raise SystemExit(f"--which takes train and/or search, got {check!r}")
        t0 = time.perf_counter()
        result = run_check(check, args, replicas, device)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        if gpus == 1:
            result["note"] = "one GPU: the mirrored run has one replica (no data parallelism)"
        print(json.dumps(result), flush=True)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
