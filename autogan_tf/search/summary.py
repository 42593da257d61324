"""The summary of a search: what it found and whether its controller learned.

`build_summary` gathers, from the oracle and the tuner's state, the figures a reader (or the
comparison runner) needs; `write_summary` writes them atomically to `<project>/summary.json`
with two PNG plots beside them in `<project>/plots/`:

* `rewards.png`: the mean reward of the controller (or sampler) trials of each iteration;
* `policy_entropy.png`: per stage, the policy's entropy at the start and the end of the stage
  against the uniform policy's, and the expected reward of the final policy against the uniform
  policy's.

summary.json holds at least::

    {"top_architectures": [{"arch": [14 ints], "reward": r}, ...],
     "reward_by_iteration": [{"iteration": i, "stage": s, "mean": m, "n": k}, ...],
     "policy": [{"stage": s, "entropy_start", "entropy_end", "kl_uniform_start",
                 "kl_uniform_end", "expected_reward_policy", "expected_reward_uniform"}, ...],
     "seconds": wall, "d_steps": n, "g_steps": n, "resets": n,
     "sampler": "controller"|"uniform", "reward": "is"|"fid", "mlas": bool,
     "weight_sharing": bool}

Entropies and KL divergences are in nats; a stage's KL from uniform is log(N) - entropy for its
N token sequences. The expected rewards are means over `policy_eval_archs` architectures
sampled from each policy, all scored on the same shared weights with the same latents; they
are None where they do not apply (no shared weights to score on).
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

import numpy as np

__all__ = ["build_summary", "write_summary", "format_stage", "format_summary", "plot_lines",
           "plot_policy", "SUMMARY_FILE", "REWARDS_PLOT", "POLICY_PLOT"]

SUMMARY_FILE = "summary.json"
REWARDS_PLOT = os.path.join("plots", "rewards.png")
POLICY_PLOT = os.path.join("plots", "policy_entropy.png")
_BEST_GRID = os.path.join("samples", "best.png")


def _round(x, digits=5):
    return None if x is None else round(float(x), digits)


def build_summary(oracle, tuner_state: dict, config) -> dict:
    """The summary of a search so far.

    Args:
      oracle: the `AutoGANOracle`.
      tuner_state: the tuner's state (`rewards` rows [iteration, kind, reward], `d_steps`,
        `g_steps`, `resets`, `seconds`, `policy_eval` per search stage).
      config: the tuner's `SharedTrainingConfig`.

    Returns:
      A JSON-ready dict (see the module docstring).
    """
    cfg = oracle.config
    by_iter = {}
    for it, kind, reward in tuner_state.get("rewards", []):
        if kind == "controller" and reward is not None:
            by_iter.setdefault(int(it), []).append(float(reward))
    reward_by_iteration = [
        {"iteration": it, "stage": cfg.stages[cfg.stage_of_iteration(it)][0],
         "mean": _round(np.mean(r)), "n": len(r)} for it, r in sorted(by_iter.items())]
    evals = tuner_state.get("policy_eval", {})
    policy = []
    for i, rec in enumerate(oracle.policy_record()):
        ev = evals.get(str(i), {})
        p, u = ev.get("expected_reward_policy"), ev.get("expected_reward_uniform")
        policy.append({
            "stage": rec["stage"], "cells": rec["cells"],
            "iterations": [rec["first_iteration"], rec["last_iteration"]],
            "controller_updates": rec["updates"],
            "entropy_start": _round(rec["entropy_start"]),
            "entropy_end": _round(rec["entropy_end"]),
            "kl_uniform_start": _round(rec["kl_uniform_start"]),
            "kl_uniform_end": _round(rec["kl_uniform_end"]),
            "max_entropy": _round(rec["max_entropy"]), "exact": rec["exact"],
            "expected_reward_policy": _round(p), "expected_reward_uniform": _round(u),
            "expected_reward_gain": None if p is None or u is None else _round(p - u),
            "stderr_policy": _round(ev.get("stderr_policy")),
            "stderr_uniform": _round(ev.get("stderr_uniform")),
            "policy_eval_archs": len(ev.get("rewards_policy", [])),
        })
    top = oracle.top_architectures() if oracle.completed_stages else []
    return {
        "finished": oracle.is_finished,
        "top_architectures": [{"arch": list(m["arch"]), "reward": _round(m["reward"])}
                              for m in top],
        "reward_by_iteration": reward_by_iteration,
        "policy": policy,
        "seconds": round(float(tuner_state.get("seconds", 0.0)), 1),
        "d_steps": int(tuner_state.get("d_steps", 0)),
        "g_steps": int(tuner_state.get("g_steps", 0)),
        "resets": int(tuner_state.get("resets", 0)),
        "sampler": cfg.sampler,
        "reward": config.reward,
        "mlas": cfg.mlas,
        "weight_sharing": cfg.weight_sharing,
        "controller_lr": cfg.controller_lr,
        "dynamic_reset": bool(config.dynamic_reset),
        "plots": {"rewards": REWARDS_PLOT, "policy": POLICY_PLOT},
        "samples": _BEST_GRID if cfg.weight_sharing else None,
    }


def write_summary(project_dir: str, summary: dict) -> str:
    """Writes summary.json (atomically) and the two plots under `project_dir`; returns the
    path of summary.json."""
    path = os.path.join(project_dir, SUMMARY_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(path + ".tmp", path)
    rows = summary["reward_by_iteration"]
    series = {}
    for r in rows:
        series.setdefault(f"stage {r['stage']}", []).append((r["iteration"], r["mean"]))
    plot_lines(os.path.join(project_dir, REWARDS_PLOT), series,
               title=f"mean reward of the {summary['sampler']} trials per iteration "
                     f"({'IS' if summary['reward'] == 'is' else '-ln FID'})",
               xlabel="search iteration", ylabel="reward")
    plot_policy(os.path.join(project_dir, POLICY_PLOT), summary["policy"])
    return path


def _fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def format_stage(rec: dict) -> str:
    """One line: a stage's policy figures."""
    line = (f"stage {rec['stage']} policy: entropy {_fmt(rec['entropy_start'])} -> "
            f"{_fmt(rec['entropy_end'])} nats (uniform {_fmt(rec['max_entropy'])}), KL from "
            f"uniform {_fmt(rec['kl_uniform_start'])} -> {_fmt(rec['kl_uniform_end'])}")
    if rec.get("expected_reward_policy") is not None:
        line += (f"; expected reward {_fmt(rec['expected_reward_policy'])} +- "
                 f"{_fmt(rec['stderr_policy'])} (final policy) vs "
                 f"{_fmt(rec['expected_reward_uniform'])} +- {_fmt(rec['stderr_uniform'])} "
                 f"(uniform)")
    return line


def format_summary(summary: dict, project_dir: Optional[str] = None) -> str:
    """The lines a search binary prints at the end."""
    where = (lambda p: os.path.join(project_dir, p)) if project_dir else (lambda p: p)
    lines = [f"search ({summary['sampler']} sampler, reward {summary['reward']}, "
             f"{'MLAS' if summary['mlas'] else 'SLAS'}, "
             f"{'shared weights' if summary['weight_sharing'] else 'no weight sharing'}): "
             f"{summary['seconds']:.0f} s, {summary['d_steps']} D steps, "
             f"{summary['g_steps']} G steps, {summary['resets']} dynamic reset(s)"]
    lines += [format_stage(rec) for rec in summary["policy"]]
    for i, m in enumerate(summary["top_architectures"]):
        lines.append(f"top {i + 1}: {' '.join(map(str, m['arch']))}  reward {_fmt(m['reward'])}")
    if summary.get("samples"):
        lines.append(f"samples of the best: {where(summary['samples'])}")
    lines.append(f"plots: {where(summary['plots']['rewards'])}, "
                 f"{where(summary['plots']['policy'])}")
    return "\n".join(lines)


# ----- plots (Pillow: it comes with TensorBoard) ----------------------------------------------
_W, _H, _M = 640, 400, 56
_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def _canvas(title: str):
    from PIL import Image, ImageDraw  # pylint: disable=import-outside-toplevel

    img = Image.new("RGB", (_W, _H), "white")
    draw = ImageDraw.Draw(img)
    draw.text((_M, 12), title, fill="black")
    return img, draw


def _axes(draw, lo: float, hi: float, xlabel: str, ylabel: str, from_zero: bool = False):
    """Draws the axes; returns y(value) -> pixel row."""
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.08 * (hi - lo)
    lo, hi = (lo if from_zero else lo - pad), hi + pad
    x0, y0, x1, y1 = _M, _H - _M, _W - 20, 40
    draw.line([(x0, y1), (x0, y0), (x1, y0)], fill="black")
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        y = y0 - (y0 - y1) * k / 4
        draw.line([(x0 - 4, y), (x0, y)], fill="black")
        draw.text((4, y - 6), f"{v:.2f}", fill="black")
    draw.text(((x0 + x1) // 2 - 40, _H - 22), xlabel, fill="black")
    draw.text((4, 24), ylabel, fill="black")
    return lambda v: y0 - (y0 - y1) * (v - lo) / (hi - lo)


def _save(img, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    img.save(path + ".tmp", format="PNG")
    os.replace(path + ".tmp", path)
    return path


def plot_lines(path: str, series: dict, title: str, xlabel: str, ylabel: str) -> str:
    """A line plot of named series of (x, y) points, written as PNG.

    Args:
      path: the PNG file.
      series: name -> [(x, y), ...].
      title, xlabel, ylabel: text.
    """
    img, draw = _canvas(title)
    pts = [p for s in series.values() for p in s if p[1] is not None]
    ys = [p[1] for p in pts] or [0.0]
    xs = [p[0] for p in pts] or [0]
    ymap = _axes(draw, min(ys), max(ys), xlabel, ylabel)
    xlo, xhi = min(xs), max(max(xs), min(xs) + 1)
    x0, x1 = _M, _W - 20
    xmap = lambda v: x0 + 10 + (x1 - x0 - 20) * (v - xlo) / (xhi - xlo)  # noqa: E731
    for k in range(min(6, xhi - xlo + 1)):
        v = round(xlo + (xhi - xlo) * k / max(1, min(5, xhi - xlo)))
        draw.text((xmap(v) - 4, _H - _M + 6), str(v), fill="black")
    for i, (name, points) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        xy = [(xmap(x), ymap(y)) for x, y in points if y is not None]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for x, y in xy:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((_W - 110, 40 + 14 * i), name, fill=colour)
    return _save(img, path)


def plot_policy(path: str, policy: Sequence[dict]) -> str:
    """Per stage: entropy at start and end against the uniform maximum, and the expected
    rewards of the final and the uniform policy, written as PNG."""
    img, draw = _canvas("policy per stage: entropy (nats) start / end vs uniform (line); "
                        "expected reward final / uniform")
    vals = [v for r in policy for v in (r["entropy_start"], r["entropy_end"], r["max_entropy"])
            if v is not None]
    ymap = _axes(draw, 0.0, 1.25 * max(vals or [1.0]), "stage", "entropy", from_zero=True)
    x0, x1 = _M, _W - 20
    width = (x1 - x0) / max(1, len(policy))
    base = ymap(0.0)
    for i, r in enumerate(policy):
        left = x0 + i * width + width * 0.15
        bar = width * 0.3
        for j, (key, colour) in enumerate((("entropy_start", _COLOURS[0]),
                                           ("entropy_end", _COLOURS[1]))):
            if r[key] is not None:
                draw.rectangle([left + j * bar, ymap(r[key]), left + (j + 1) * bar - 2, base],
                               fill=colour)
        y = ymap(r["max_entropy"])
        draw.line([(left - 4, y), (left + 2 * bar + 2, y)], fill="black", width=2)
        draw.text((left, _H - _M + 6), f"stage {r['stage']}", fill="black")
        if r.get("expected_reward_policy") is not None:
            draw.text((left, _H - _M + 20), f"R {r['expected_reward_policy']:.2f} / "
                      f"{r['expected_reward_uniform']:.2f}", fill="black")
    draw.text((_M + 10, 40), "start", fill=_COLOURS[0])
    draw.text((_M + 10, 54), "end", fill=_COLOURS[1])
    return _save(img, path)
