"""The experiments' figures, drawn with matplotlib (Agg, no display) and written as PNG.

* `proxy_scatter`: shared-weight reward against the from-scratch score, one dot per
  architecture, with Spearman's rho and its p-value in the title (paper Fig. 7);
* `reward_curves`: mean reward per search iteration, one line per search (e.g. AutoGAN and
  random search, one line per seed), stage boundaries dashed;
* `final_scores`: IS and FID per method, every seed a dot and the mean a bar.

`require_matplotlib` fails early, with the fix, where matplotlib is missing, so a long run does
not end without its figures. Each PNG is written atomically (a temporary file renamed).
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Optional, Sequence

from autogan_tf.errors import AutoGANError

__all__ = ["require_matplotlib", "proxy_scatter", "reward_curves", "final_scores"]

# One colour per method or search kind, in a fixed order (matplotlib's tab10).
_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:pink", "tab:gray")


def require_matplotlib():
    """`matplotlib.pyplot` on the Agg backend.

    Raises:
      AutoGANError: matplotlib is not installed (naming the requirement to install).
    """
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise AutoGANError(
            "matplotlib is not installed; the experiments draw their figures with it. Install "
            "the pinned requirements: pip install -r requirements.txt") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    return plt


def _save(fig, path: str) -> str:
    plt = require_matplotlib()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _fmt(x: Optional[float], digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def proxy_scatter(path: str, rewards: Sequence[float], scores: Sequence[float],
                  rho: Optional[float], p_value: Optional[float],
                  xlabel: str = "shared-weight reward (proxy)",
                  ylabel: str = "IS trained from scratch (real)") -> str:
    """A scatter plot of proxy rewards against from-scratch scores; returns `path`."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(rewards, scores, color=_COLOURS[0], zorder=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"proxy validity: Spearman rho {_fmt(rho)} (p {_fmt(p_value, 3)}), "
                 f"n={len(rewards)}", fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def reward_curves(path: str, series: Mapping[str, Sequence[tuple]],
                  stage_starts: Sequence[int] = (), ylabel: str = "mean reward (IS)") -> str:
    """Mean reward per search iteration; returns `path`.

    Args:
      path: the PNG to write.
      series: label -> [(iteration, mean reward), ...]. Labels of the form "<kind> seed <s>"
        share a colour per kind, so seeds of one search kind read as one family.
      stage_starts: iterations where a search stage begins (drawn dashed, the first omitted).
      ylabel: the reward's name.
    """
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    kinds = []
    for label, points in series.items():
        kind = label.split(" seed ")[0]
        if kind not in kinds:
            kinds.append(kind)
        colour = _COLOURS[kinds.index(kind) % len(_COLOURS)]
        xs = [p[0] for p in points if p[1] is not None]
        ys = [p[1] for p in points if p[1] is not None]
        ax.plot(xs, ys, marker="o", markersize=3, color=colour, alpha=0.8, label=label)
    for start in list(stage_starts)[1:]:
        ax.axvline(start - 0.5, color="black", linestyle="--", linewidth=0.8, alpha=0.5)
    from matplotlib.ticker import MaxNLocator  # pylint: disable=import-outside-toplevel
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("search iteration")
    ax.set_ylabel(ylabel)
    ax.set_title("reward of the sampled architectures per search iteration", fontsize=10)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    return _save(fig, path)


def final_scores(path: str, methods: Sequence[str], values: Mapping[str, Mapping[str, list]]
                 ) -> str:
    """IS and FID per method: the mean as a bar, each seed as a dot; returns `path`.

    Args:
      path: the PNG to write.
      methods: the methods in table order.
      values: method -> {'is': [per-seed IS], 'fid': [per-seed FID]} (missing seeds left out).
    """
    plt = require_matplotlib()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, key, label in ((axes[0], "is", "IS (higher is better)"),
                           (axes[1], "fid", "FID (lower is better)")):
        for i, method in enumerate(methods):
            ys = [v for v in values.get(method, {}).get(key, []) if v is not None]
            colour = _COLOURS[i % len(_COLOURS)]
            if ys:
                ax.bar(i, sum(ys) / len(ys), color=colour, alpha=0.35, width=0.6)
                offsets = [(j - (len(ys) - 1) / 2) * 0.12 for j in range(len(ys))]
                ax.scatter([i + o for o in offsets], ys, color=colour, zorder=3, s=18)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("final generators: mean (bar) and each seed (dots)", fontsize=10)
    return _save(fig, path)
