"""The comparison of AutoGAN with its baselines over seeds, as resumable cells of run directories.

For each seed and method (`METHODS`) one cell, a directory `<output_dir>/<method>/seed_<s>/`,
runs the project's binaries as subprocesses (each step in its own process, with the binary's
own checks, locks and resume):

* `autogan`: `search` with the controller, then `derive` (train the top candidates with the
  training flags, keep the best by FID);
* `random`: the same search flags with `--sampler=uniform` (random search with weight
  sharing), then `derive`;
* `sngan`, `autogan_cifar10_a`: `train` of that named architecture;
* `uniform`: `train` of one architecture drawn uniformly, token by token, from the seed's
  `random_search` stream (`uniform_architecture`).

Every final generator is trained with the same training flags (recipe and iterations) and the
same seed as its cell; its IS and FID are those of the training run's final evaluation (the
EMA generator after the last iteration).

A cell records its steps in `cell.json`: the exact arguments of each, whether it finished, and
its wall time (updated every few seconds while it runs, so a kill loses only seconds of it).
A finished step is never run again; a finished cell is skipped whole. Restarted after a kill,
the runner continues the step that was running (the binaries resume their run directories);
started with other settings for a cell that ran before, it refuses before running anything and
names the cell. A step that fails is recorded with the end of its log (`<cell>/logs/`), the
other cells go on, and the runner reports the failures at the end (run it again to retry them).

After every cell the runner writes `results.json` (every cell, and per method the mean and
standard deviation over seeds) and `results.md` (the table, the budgets in its header); at the
end, those and two PNG plots: `search_rewards.png` (mean reward per search iteration of the
AutoGAN and random searches, every seed) and `final_scores.png` (IS and FID per method, every
seed shown).
"""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import signal
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

import numpy as np
from absl import flags as absl_flags
from absl import logging

from autogan_tf import rundir
from autogan_tf import search_space as ss
from autogan_tf import seeds as seeds_lib
from autogan_tf.errors import AutoGANError, ConfigError
from autogan_tf.experiments import plots

__all__ = ["METHODS", "DESCRIPTIONS", "CompareConfig", "Step", "CompareError",
           "expand_flags", "uniform_architecture", "cell_dir", "plan_cell", "run_compare",
           "subprocess_executor", "collect_results", "format_table", "RESULTS_FILE",
           "TABLE_FILE", "REWARDS_PLOT", "SCORES_PLOT"]

METHODS = ("autogan", "random", "sngan", "autogan_cifar10_a", "uniform")
DESCRIPTIONS = {
    "autogan": "AutoGAN: controller search (MLAS) + derive",
    "random": "random search with weight sharing + derive",
    "sngan": "SN-GAN's generator (hand-designed)",
    "autogan_cifar10_a": "AutoGAN-top1 found on CIFAR-10 (paper)",
    "uniform": "one architecture drawn uniformly",
}
_SEARCHED = {"autogan": "controller", "random": "uniform"}
_NAMED = ("sngan", "autogan_cifar10_a")

RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"
REWARDS_PLOT = "search_rewards.png"
SCORES_PLOT = "final_scores.png"
_CELL_FILE = "cell.json"
_TICK_S = 5.0


class CompareError(AutoGANError):
    """Cells of a comparison failed (each named, with where its log is)."""


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """A comparison: which cells, and the flags every search and every training gets.

    Attributes:
      search_args: flags of the `search` binary for both searches (flagfiles expanded, see
        `expand_flags`); the runner adds `--sampler`, `--seed` and `--run_dir`.
      train_args: flags of `train` and `derive` for every final generator (expanded); the
        runner adds `--arch` or `--candidates`, `--seed` and `--run_dir`.
      seeds: one cell per seed and method.
      methods: a subset of `METHODS`, in table order.
      derive_candidates: how many of a search's top architectures `derive` trains (the best by
        FID is the method's generator).
    """

    search_args: tuple = ()
    train_args: tuple = ()
    seeds: tuple = (0, 1, 2)
    methods: tuple = METHODS
    derive_candidates: int = 1

    def __post_init__(self):
        for name in ("search_args", "train_args", "seeds", "methods"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"methods must be a non-empty subset of {list(METHODS)}, got "
                              f"{list(self.methods)}")
        if len(set(self.methods)) != len(self.methods) or len(set(self.seeds)) != len(
                self.seeds):
            raise ConfigError(f"methods and seeds must not repeat: {list(self.methods)}, "
                              f"{list(self.seeds)}")
        if not self.seeds or min(int(s) for s in self.seeds) < 0:
            raise ConfigError(f"seeds must be non-empty and >= 0, got {list(self.seeds)}")
        if self.derive_candidates < 1:
            raise ConfigError(f"derive_candidates must be >= 1, got {self.derive_candidates}")
        for a in self.search_args + self.train_args:
            if not a.startswith("--"):
                raise ConfigError(f"not a flag: {a!r} (give flags as --name=value)")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True)
class Step:
    """One subprocess of a cell: `python -m <module> <args>`."""

    name: str
    module: str
    args: tuple


def expand_flags(flagfile: Optional[str], extra: Sequence[str] = ()) -> tuple:
    """The flags of `--flagfile=<flagfile>` (nested flagfiles expanded), then `extra` ones.

    Expanding them here makes what a cell records the flags it ran with, so a changed flagfile
    is noticed on a restart.

    Raises:
      ConfigError: the flagfile cannot be read.
    """
    args = ([f"--flagfile={flagfile}"] if flagfile else []) + list(extra)
    try:
        return tuple(absl_flags.FlagValues().read_flags_from_files(args, force_gnu=True))
    except (absl_flags.Error, OSError) as e:
        raise ConfigError(f"cannot read the flags {args}: {e}") from e


def uniform_architecture(seed: int) -> tuple:
    """The 14 tokens of the `uniform` method for `seed`: each drawn uniformly from its options
    (the `random_search` stream of the seed)."""
    rng = seeds_lib.numpy_rng(seed, "random_search")
    return tuple(int(rng.integers(0, t.size)) for cell in ss.CELL_TOKENS for t in cell)


def cell_dir(output_dir: str, method: str, seed: int) -> str:
    return os.path.join(output_dir, method, f"seed_{seed}")


def plan_cell(cfg: CompareConfig, output_dir: str, method: str, seed: int) -> list:
    """The steps of one cell, in order (see the module docstring)."""
    cell = cell_dir(output_dir, method, seed)
    tail = (f"--seed={seed}", f"--run_dir={cell}")
    train_args = ("--noprogress",) + cfg.train_args
    if method in _SEARCHED:
        candidates = os.path.join(cell, "search", "top_architectures.json")
        return [
            Step("search", "autogan_tf.search", ("--noprogress",) + cfg.search_args
                 + (f"--sampler={_SEARCHED[method]}",) + tail),
            Step("derive", "autogan_tf.derive", train_args + (
                f"--candidates={candidates}", f"--num_candidates={cfg.derive_candidates}")
                 + tail),
        ]
    arch = method if method in _NAMED else " ".join(map(str, uniform_architecture(seed)))
    return [Step("train", "autogan_tf.train", train_args + (
        f"--arch={arch}", f"--seed={seed}", f"--run_dir={os.path.join(cell, 'train')}"))]


# ----- running a step ---------------------------------------------------------------------------
def _die_with_parent():
    """In the child: be sent SIGTERM if the runner dies (Linux), so no step outlives it."""
    try:
        import ctypes  # pylint: disable=import-outside-toplevel
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def subprocess_executor(step: Step, log_path: str, tick: Callable[[float], None]) -> int:
    """Runs a step as `python -m <module> <args>` with its output in `log_path`.

    Calls `tick(seconds so far)` every few seconds. If the runner is interrupted, the step is
    stopped (SIGTERM, then SIGKILL) before the interruption goes on.

    Returns:
      The step's exit status.
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]]
                                                  if env.get("PYTHONPATH") else []))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.time()
    with open(log_path, "a") as log:
        log.write(f"$ {sys.executable} -m {step.module} {' '.join(step.args)}\n")
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", step.module, *step.args], stdout=log,
                                stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        try:
            while True:
                try:
                    return proc.wait(timeout=_TICK_S)
                except subprocess.TimeoutExpired:
                    tick(time.time() - start)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            tick(time.time() - start)


def _log_tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as f:
            text = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


# ----- cells ------------------------------------------------------------------------------------
def _step_record(step: Step) -> dict:
    return {"module": step.module, "args": list(step.args), "done": False, "seconds": 0.0}


def _read_cell(cell: str) -> Optional[dict]:
    return rundir.read_json(os.path.join(cell, _CELL_FILE), ConfigError,
                            "use another --output_dir")


def _check_cell(state: Optional[dict], steps: list, cell: str) -> None:
    """Refuses a cell that ran before with other step arguments (naming the first)."""
    if not state:
        return
    for step in steps:
        old = state.get("steps", {}).get(step.name)
        if old is not None and old.get("args") != list(step.args):
            diffs = sorted(set(old.get("args", [])) ^ set(step.args))
            raise ConfigError(
                f"the cell {cell} ran its {step.name} step with other settings (differing "
                f"flags: {' '.join(diffs[:8])}). Run the comparison with the settings it was "
                "started with, or in another --output_dir")


def _cell_finished(state: Optional[dict], steps: list) -> bool:
    return bool(state and state.get("result") and all(
        state.get("steps", {}).get(s.name, {}).get("done") for s in steps))


def _read(path: str) -> Optional[dict]:
    return rundir.read_json(path, ConfigError, "use another --output_dir")


def _final_scores(run_dir: str) -> dict:
    report = _read(os.path.join(run_dir, "report.json"))
    if not report or not report.get("final"):
        raise CompareError(f"{run_dir} holds no final evaluation (report.json)")
    final = report["final"]
    return {"arch": report["arch"], "is_mean": final["is_mean"], "is_std": final["is_std"],
            "fid": final["fid"], "iterations": report["iterations"], "train_run": run_dir}


def cell_result(method: str, seed: int, cell: str, state: dict) -> dict:
    """The row of a finished cell: final IS/FID, architecture, wall times, search rewards."""
    steps = state["steps"]
    row = {"method": method, "seed": seed, "cell": cell, "search_seconds": None,
           "search_d_steps": None, "reward_by_iteration": None, "search_reward": None}
    if method in _SEARCHED:
        summary = _read(os.path.join(cell, "search", "summary.json")) or {}
        best = _read(os.path.join(cell, "derive", "best.json"))
        if not best:
            raise CompareError(f"{cell}/derive/best.json is missing: derive did not finish")
        row.update(_final_scores(best["run_dir"]))
        row.update(search_seconds=summary.get("seconds"), search_d_steps=summary.get("d_steps"),
                   reward_by_iteration=summary.get("reward_by_iteration"),
                   search_reward=summary.get("reward"),
                   search_step_seconds=round(steps["search"]["seconds"], 1),
                   train_seconds=round(steps["derive"]["seconds"], 1))
    else:
        row.update(_final_scores(os.path.join(cell, "train")),
                   train_seconds=round(steps["train"]["seconds"], 1))
    return row


def _run_cell(method: str, seed: int, cell: str, steps: list, executor, say) -> dict:
    state = _read_cell(cell) or {"method": method, "seed": seed, "steps": {}, "result": None}
    os.makedirs(cell, exist_ok=True)
    path = os.path.join(cell, _CELL_FILE)
    for step in steps:
        rec = state["steps"].setdefault(step.name, _step_record(step))
        if rec["done"]:
            say(f"  {step.name}: finished before, skipped")
            continue
        before = rec["seconds"]

        def tick(seconds, rec=rec, before=before):
            rec["seconds"] = before + seconds
            rundir.write_json(path, state)

        say(f"  {step.name}: python -m {step.module} ... (log {cell}/logs/{step.name}.log)")
        status = executor(step, os.path.join(cell, "logs", f"{step.name}.log"), tick)
        if status != 0:
            rec["failed"] = f"exit status {status}"
            rundir.write_json(path, state)
            log = os.path.join(cell, "logs", f"{step.name}.log")
            raise CompareError(f"{cell}: {step.name} failed (exit status {status}; see {log}): "
                               f"{_log_tail(log)}")
        rec.pop("failed", None)
        rec["done"] = True
        rundir.write_json(path, state)
        say(f"  {step.name}: done ({rec['seconds']:.0f} s)")
    state["result"] = cell_result(method, seed, cell, state)
    rundir.write_json(path, state)
    return state["result"]


# ----- results ----------------------------------------------------------------------------------
def _mean_std(values: list) -> tuple:
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


def _flag_values(args: Sequence[str]) -> dict:
    """{name: value} of `--name=value`, `--name` (true) and `--noname` (false); last wins."""
    out = {}
    for a in args:
        if not a.startswith("--"):
            continue
        name, eq, value = a[2:].partition("=")
        if not eq:
            value = "true"
            if name.startswith("no"):
                name, value = name[2:], "false"
        out[name] = value
    return out


def _resolved_flags(output_dir: Optional[str], pattern: str) -> dict:
    """The flags a finished step recorded (its run directory's flags.txt), {} if none yet."""
    if not output_dir:
        return {}
    for path in sorted(glob.glob(os.path.join(output_dir, "*", "seed_*", pattern))):
        try:
            with open(path) as f:
                return _flag_values(f.read().splitlines())
        except OSError:
            continue
    return {}


def budgets(cfg: CompareConfig, output_dir: Optional[str] = None) -> dict:
    """The budgets a comparison runs with: the flags its steps recorded (`flags.txt`, every
    default resolved) where one ran, else the flags given ('default' where unset)."""
    s = dict(_resolved_flags(output_dir, os.path.join("search", "flags.txt")),
             **_flag_values(cfg.search_args))
    t = dict(_resolved_flags(output_dir, os.path.join("train", "flags.txt")),
             **_flag_values(cfg.train_args))
    pick = lambda d, k: d.get(k, "default")  # noqa: E731
    return {
        "seeds": list(cfg.seeds),
        "dataset": pick(t, "dataset"),
        "search": {k: pick(s, k) for k in ("iterations_per_stage", "controller_steps",
                                           "ctrl_batch", "max_shared_steps", "shared_epochs",
                                           "num_candidates", "top_k", "reward",
                                           "reward_images", "dynamic_reset")},
        "train": {k: pick(t, k) for k in ("max_iter", "n_critic", "g_batch_size",
                                          "d_batch_size", "gf_dim", "df_dim", "eval_images",
                                          "ema_decay")},
        "derive_candidates": cfg.derive_candidates,
    }


def collect_results(cfg: CompareConfig, rows: list, failed: list,
                    output_dir: Optional[str] = None) -> dict:
    """results.json: the budgets, every finished cell, per method mean and std over seeds."""
    methods = {}
    for m in cfg.methods:
        mine = [r for r in rows if r["method"] == m]
        entry = {"description": DESCRIPTIONS[m], "seeds": [r["seed"] for r in mine]}
        for key in ("is_mean", "fid", "search_seconds", "train_seconds"):
            mean, std = _mean_std([r.get(key) for r in mine])
            entry[key] = {"mean": mean, "std": std}
        methods[m] = entry
    return {"config": cfg.to_dict(), "budgets": budgets(cfg, output_dir), "methods": methods,
            "cells": rows, "failed": failed,
            "finished": not failed and len(rows) == len(cfg.methods) * len(cfg.seeds)}


def _pm(stat: dict, digits: int = 2) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def format_table(results: dict) -> str:
    """results.md: the budgets, then one row per method (mean ± std over seeds)."""
    b = results["budgets"]
    s, t = b["search"], b["train"]
    lines = [
        f"# AutoGAN and its baselines on {b['dataset']}",
        "",
        f"Seeds {', '.join(map(str, b['seeds']))}. Searches (AutoGAN and random, the same "
        f"flags but the sampler): iterations per stage {s['iterations_per_stage']}, controller "
        f"steps {s['controller_steps']} x batch {s['ctrl_batch']}, at most "
        f"{s['max_shared_steps']} D steps and {s['shared_epochs']} epochs of shared training "
        f"per iteration, M={s['num_candidates']}, K={s['top_k']}, reward {s['reward']} of "
        f"{s['reward_images']} images, dynamic reset {s['dynamic_reset']}. Derive trains the "
        f"top {b['derive_candidates']}. Every final generator: {t['max_iter']} generator "
        f"iterations (n_critic {t['n_critic']}, batches G {t['g_batch_size']} / D "
        f"{t['d_batch_size']}, gf {t['gf_dim']}, df {t['df_dim']}, EMA {t['ema_decay']}), "
        f"scored after the last iteration on {t['eval_images']} images.",
        "",
        "| method | IS | FID | seeds | search wall (s) | training wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    for m, e in results["methods"].items():
        lines.append(f"| {m}: {e['description']} | {_pm(e['is_mean'])} | {_pm(e['fid'])} | "
                     f"{len(e['seeds'])} | {_pm(e['search_seconds'], 0)} | "
                     f"{_pm(e['train_seconds'], 0)} |")
    lines += ["", "IS and FID: mean ± standard deviation over the seeds (the final evaluation "
              "of each cell's generator). Wall times: the search's own clock; training: the "
              "derive or train step, process start included."]
    if results["failed"]:
        lines += ["", "Failed cells: " + "; ".join(results["failed"])]
    return "\n".join(lines) + "\n"


def _write_outputs(cfg: CompareConfig, output_dir: str, rows: list, failed: list,
                   with_plots: bool = True) -> dict:
    """Writes results.json and results.md, and the plots unless `with_plots` is False."""
    results = collect_results(cfg, rows, failed, output_dir)
    if not with_plots:
        results["table"] = rundir.write_text(os.path.join(output_dir, TABLE_FILE),
                                             format_table(results))
        rundir.write_json(os.path.join(output_dir, RESULTS_FILE), results)
        return results
    series, starts = {}, []
    for r in rows:
        if r.get("reward_by_iteration"):
            series[f"{r['method']} seed {r['seed']}"] = [
                (p["iteration"], p["mean"]) for p in r["reward_by_iteration"]]
            if not starts:
                seen = {}
                for p in r["reward_by_iteration"]:
                    seen.setdefault(p["stage"], p["iteration"])
                starts = sorted(seen.values())
    reward = next((r["search_reward"] for r in rows if r.get("search_reward")), "is")
    results["plots"] = {
        "search_rewards": plots.reward_curves(
            os.path.join(output_dir, REWARDS_PLOT), series, starts,
            ylabel="mean reward (IS)" if reward == "is" else "mean reward (-ln FID)"),
        "final_scores": plots.final_scores(
            os.path.join(output_dir, SCORES_PLOT), list(cfg.methods),
            {m: {"is": [r["is_mean"] for r in rows if r["method"] == m],
                 "fid": [r["fid"] for r in rows if r["method"] == m]} for m in cfg.methods}),
    }
    results["table"] = rundir.write_text(os.path.join(output_dir, TABLE_FILE),
                                         format_table(results))
    rundir.write_json(os.path.join(output_dir, RESULTS_FILE), results)
    return results


def run_compare(cfg: CompareConfig, output_dir: str, executor=None,
                report: Optional[Callable[[str], None]] = None) -> dict:
    """Runs (or resumes) every cell of the comparison, then writes its results.

    Args:
      cfg: the comparison.
      output_dir: where cells and results go.
      executor: `executor(step, log_path, tick) -> exit status` runs one step
        (`subprocess_executor` when None).
      report: where progress lines go (absl logging when None).

    Returns:
      The contents of results.json (see `collect_results`), with `plots` and `table`.

    Raises:
      ConfigError: a cell ran before with other settings (nothing is run).
      RunDirError: another process runs a comparison in `output_dir`.
      CompareError: after all other cells, naming the cells that failed.
    """
    say = report or logging.info
    executor = executor or subprocess_executor
    plots.require_matplotlib()
    cells = [(seed, m) for seed in cfg.seeds for m in cfg.methods]
    with rundir.RunDirLock(output_dir, "comparison"):
        planned = {}
        for seed, m in cells:  # every cell checked before any runs
            cell = cell_dir(output_dir, m, seed)
            planned[(seed, m)] = plan_cell(cfg, output_dir, m, seed)
            _check_cell(_read_cell(cell), planned[(seed, m)], cell)
        rundir.write_json(os.path.join(output_dir, "config.json"), cfg.to_dict())
        rows, failed = [], []
        for k, (seed, m) in enumerate(cells):
            cell = cell_dir(output_dir, m, seed)
            steps = planned[(seed, m)]
            state = _read_cell(cell)
            if _cell_finished(state, steps):
                say(f"[{k + 1}/{len(cells)}] {m} seed {seed}: finished before, skipped")
                rows.append(state["result"])
                continue
            say(f"[{k + 1}/{len(cells)}] {m} seed {seed} ({DESCRIPTIONS[m]}) in {cell}")
            try:
                row = _run_cell(m, seed, cell, steps, executor, say)
            except CompareError as e:
                say(f"  failed: {e}")
                failed.append(f"{m} seed {seed}: {e}")
                continue
            say(f"  IS {row['is_mean']:.3f}, FID {row['fid']} ({' '.join(map(str, row['arch']))})")
            rows.append(row)
            _write_outputs(cfg, output_dir, rows, failed, with_plots=False)  # the table so far
        results = _write_outputs(cfg, output_dir, rows, failed)
    say(f"results: {results['table']}, {os.path.join(output_dir, RESULTS_FILE)}, "
        f"{results['plots']['search_rewards']}, {results['plots']['final_scores']}")
    if failed:
        raise CompareError(f"{len(failed)} cell(s) failed: {'; '.join(failed)}. Run the same "
                           "command again to retry them")
    return results
