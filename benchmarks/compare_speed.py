"""The project's speed figures side by side with the authors' PyTorch code, as one JSON.

    python benchmarks/compare_speed.py [--quick] [--repeats=N] [--rounds=N]
        [--precision=fp32,bf16] [--which=search,derived,generation] [--xla] [--no_anchor]
        [--allocator=glibc,jemalloc] [--output=speed.json]

Runs, back to back in one process tree, `benchmarks/bench_steps.py` (search iteration, derived
iteration, generation; fp32 and bf16) and, when the anchor is available, the PyTorch harness
`../shared/bench/run_torch_anchor.sh` (the authors' model files, same work definitions, glibc
malloc and jemalloc). The anchor is available when `MIRROR` names a git directory of the
reference repository, or when `$ANCHOR_WORK` (default /tmp/autogan-anchor) already holds its
checkout and venv; `ANCHOR_SCRIPT` overrides where the harness script is. With `--rounds=N` the
two sides alternate N times and each figure is the median over the rounds, which tames a
machine that others use at the same time. `--allocator` times the project's side with the
system's malloc (glibc) and with jemalloc preloaded as the anchor preloads it (the default:
both where libjemalloc.so.2 is installed, as the binaries' `--malloc=auto` preloads it).

Prints one JSON object: `project` (per figure, precision and allocator, e.g. `fp32+jemalloc`:
seconds per iteration or images per second), `anchor` (per allocator), and `ratios`: for each
figure, how many times faster the project is than PyTorch with glibc and with jemalloc (PyTorch
seconds / project seconds; for generation project images/s / PyTorch images/s), e.g.
`fp32+jemalloc_vs_torch_jemalloc`, the two sides on the same allocator. Figures differ between
machines: compare ratios from one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIGURES = {"search": "search_iteration", "derived": "derived_iteration",
           "generation": "inference"}
_ANCHOR_WHICH = {"search": "search", "derived": "derived", "generation": "inference"}


def _default_anchor_script() -> str:
    return os.environ.get("ANCHOR_SCRIPT") or os.path.normpath(
        os.path.join(REPO, "..", "shared", "bench", "run_torch_anchor.sh"))


def anchor_available(script: str) -> tuple:
    """(available, why): the harness script exists and MIRROR or a set-up ANCHOR_WORK is there."""
    if not os.path.isfile(script):
        return False, f"no anchor harness at {script}"
    work = os.environ.get("ANCHOR_WORK") or os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "autogan-anchor")
    set_up = (os.path.isfile(os.path.join(work, "ref", "models_search", "shared_gan.py"))
              and os.path.exists(os.path.join(work, "venv", "bin", "python")))
    mirror = os.environ.get("MIRROR")
    if set_up or (mirror and os.path.isdir(mirror)):
        return True, "set up in " + work if set_up else "MIRROR=" + mirror
    return False, ("set MIRROR to a git directory of TAMU-VITA/AutoGAN (or set up ANCHOR_WORK) "
                   "to time the PyTorch anchor")


def _json_lines(text: str) -> list:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def _run(cmd, env=None, timeout=None) -> tuple:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{tail}")
    return _json_lines(p.stdout), time.perf_counter() - t0, p.stderr


def _jemalloc() -> str | None:
    sys.path.insert(0, REPO)
    from autogan_tf.cli import common  # pylint: disable=import-outside-toplevel

    lib = common.find_jemalloc()
    return lib if lib and os.path.isfile(lib) else None


def allocator_env(allocator: str) -> dict:
    """The environment of the project's benchmark process for `allocator`.

    Raises:
      RuntimeError: jemalloc asked for and not installed.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if allocator == "glibc":
        return env
    from autogan_tf.cli import common  # pylint: disable=import-outside-toplevel
    lib = _jemalloc()
    if lib is None:
        raise RuntimeError("--allocator=jemalloc: libjemalloc.so.2 is not installed (Debian/"
                           "Ubuntu: apt-get install libjemalloc2; or set AUTOGAN_TF_JEMALLOC)")
    return dict(env, LD_PRELOAD=lib, MALLOC_CONF=common.JEMALLOC_CONF)


def run_project(args, allocator: str = "glibc") -> list:
    cmd = [sys.executable, os.path.join(HERE, "bench_steps.py"), "--which=" + args.which,
           "--precision=" + args.precision, "--num_images=" + str(args.num_images)]
    if args.repeats:
        cmd.append(f"--repeats={args.repeats}")
    if args.xla:
        cmd.append("--xla")
    if args.scale != 1.0:
        cmd.append(f"--scale={args.scale}")
    lines, seconds, _ = _run(cmd, env=allocator_env(allocator))
    for line in lines:
        line["allocator"] = allocator
    return lines


def run_anchor(args, script: str) -> tuple:
    which = ",".join(_ANCHOR_WHICH[w] for w in args.which.split(",") if w)
    cmd = ["bash", script, "--which=" + which, f"--num_images={args.num_images}"]
    if args.repeats:
        cmd.append(f"--repeats={args.repeats}")
    lines, _, stderr = _run(cmd)
    return [x for x in lines if "benchmark" in x], stderr


def _value(record: dict) -> float:
    if record["benchmark"] == "inference":
        return float(record["images_per_second"])
    return float(record["seconds_per_iteration"])


def summarise(project_runs: list, anchor_runs: list) -> dict:
    """Medians over rounds, then the ratios (higher: the project is faster)."""
    project, anchor = {}, {}
    for run in project_runs:
        for r in run:
            key = (r["benchmark"], r["precision"] + ("+xla" if r.get("xla") else "")
                   + ("+jemalloc" if r.get("allocator") == "jemalloc" else ""))
            project.setdefault(key, []).append(_value(r))
    for run in anchor_runs:
        for r in run:
            anchor.setdefault((r["benchmark"], r.get("allocator", "glibc")), []).append(
                _value(r))
    med = lambda v: round(statistics.median(v), 4)  # noqa: E731
    out = {"project": {}, "anchor": {}, "ratios": {}}
    for (bench, prec), vals in sorted(project.items()):
        out["project"].setdefault(bench, {})[prec] = med(vals)
    for (bench, alloc), vals in sorted(anchor.items()):
        out["anchor"].setdefault(bench, {})[alloc] = med(vals)
    for bench, precs in out["project"].items():
        for prec, mine in precs.items():
            for alloc, theirs in out["anchor"].get(bench, {}).items():
                ratio = mine / theirs if bench == "inference" else theirs / mine
                out["ratios"].setdefault(bench, {})[f"{prec}_vs_torch_{alloc}"] = round(ratio, 3)
    unit = {"inference": "images_per_second"}
    out["units"] = {b: unit.get(b, "seconds_per_iteration") for b in out["project"]}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--which", default="search,derived,generation")
    p.add_argument("--precision", default="fp32,bf16")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed iterations per figure (default: search 5, derived 3, one "
                        "generation pass; --quick: 2, 1, 1)")
    p.add_argument("--rounds", type=int, default=1, help="alternate project and anchor N times")
    p.add_argument("--num_images", type=int, default=None,
                   help="generation images per pass (default 10,000; --quick 1,000)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and images")
    p.add_argument("--xla", action="store_true", help="also jit_compile the project's steps")
    p.add_argument("--scale", type=float, default=1.0, help="project only: smoke runs")
    p.add_argument("--no_anchor", action="store_true", help="project figures only")
    p.add_argument("--allocator", default=None,
                   help="project side: glibc, jemalloc or glibc,jemalloc (default: both where "
                        "jemalloc is installed, else glibc)")
    p.add_argument("--anchor_script", default=_default_anchor_script())
    p.add_argument("--output", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = args.repeats or 2
        args.num_images = args.num_images or 1000
    args.num_images = args.num_images or 10_000
    allocators = ([a for a in args.allocator.split(",") if a] if args.allocator else
                  ["glibc", "jemalloc"] if _jemalloc() else ["glibc"])
    if not allocators or set(allocators) - {"glibc", "jemalloc"}:
        p.error(f"--allocator takes glibc, jemalloc or glibc,jemalloc; got {args.allocator!r}")
    if "jemalloc" in allocators and not _jemalloc():
        p.error("--allocator=jemalloc: libjemalloc.so.2 is not installed (Debian/Ubuntu: "
                "apt-get install libjemalloc2; or set AUTOGAN_TF_JEMALLOC)")
    use_anchor, why = (False, "--no_anchor") if args.no_anchor else anchor_available(
        args.anchor_script)
    t0 = time.time()
    project_runs, anchor_runs, notes = [], [], []
    for r in range(args.rounds):
        for allocator in allocators:
            print(f"# round {r + 1}/{args.rounds}: project ({allocator})", file=sys.stderr,
                  flush=True)
            project_runs.append(run_project(args, allocator))
        if use_anchor:
            print(f"# round {r + 1}/{args.rounds}: PyTorch anchor", file=sys.stderr, flush=True)
            lines, stderr = run_anchor(args, args.anchor_script)
            anchor_runs.append(lines)
            notes += [ln for ln in stderr.splitlines() if "jemalloc run skipped" in ln]
    report = summarise(project_runs, anchor_runs)
    report.update(
        anchor={"available": use_anchor, "why": why, **report["anchor"]},
        machine={"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()},
        settings={"which": args.which, "precision": args.precision, "repeats": args.repeats,
                  "rounds": args.rounds, "num_images": args.num_images, "quick": args.quick,
                  "allocators": allocators,
                  "xla": args.xla, "scale": args.scale},
        seconds=round(time.time() - t0, 1), notes=notes,
        raw={"project": project_runs, "anchor": anchor_runs})
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


def _cpu_name() -> str:
    sys.path.insert(0, REPO)
    from autogan_tf.training import precision  # pylint: disable=import-outside-toplevel

    device = precision.DeviceInfo(precision.read_cpuinfo())
    return device.describe()


if __name__ == "__main__":
    sys.exit(main())
