"""Runs a whole AutoGAN search: builds the oracle and tuner, runs them, reports the top-K."""

from __future__ import annotations

import os
import time
from typing import Optional

import tensorflow as tf

from autogan_tf import data as data_lib
from autogan_tf.eval import metrics
from autogan_tf.search.oracle import AutoGANOracle, OracleConfig
from autogan_tf.search.tuner import AutoGANTuner, SharedTrainingConfig

__all__ = ["SearchError", "run_search", "build_search"]


from autogan_tf.errors import SearchError  # noqa: E402  (re-exported)


def _check_inputs(cfg: SharedTrainingConfig) -> None:
    try:
        data_lib.make_dataset(cfg.dataset, cfg.resolution(0), cfg.gan.d_batch_size,
                              data_dir=cfg.data_dir)
    except data_lib.DatasetError as e:
        raise SearchError(str(e)) from e


def build_search(oracle_cfg: OracleConfig, train_cfg: SharedTrainingConfig, run_dir: str,
                 overwrite: bool = False, strategy: Optional[tf.distribute.Strategy] = None):
    """The oracle and tuner of a search in `run_dir/search` (resumed unless `overwrite`)."""
    _check_inputs(train_cfg)
    oracle = AutoGANOracle(oracle_cfg)
    try:
        tuner = AutoGANTuner(oracle, train_cfg, directory=run_dir, project_name="search",
                             overwrite=overwrite, strategy=strategy)
    except (metrics.ClassifierError, FileNotFoundError) as e:
        raise SearchError(str(e)) from e
    return oracle, tuner


def run_search(oracle_cfg: OracleConfig, train_cfg: SharedTrainingConfig, run_dir: str,
               overwrite: bool = False, strategy: Optional[tf.distribute.Strategy] = None,
               flags_text: Optional[str] = None) -> dict:
    """Runs (or resumes) a search to the end; returns the top architectures and where."""
    t0 = time.time()
    oracle, tuner = build_search(oracle_cfg, train_cfg, run_dir, overwrite, strategy)
    if flags_text is not None:
        with open(os.path.join(tuner.project_dir, "flags.txt"), "w") as f:
            f.write(flags_text)
    tuner.search()
    path = tuner.write_top_architectures()
    state = tuner.get_state()
    return {"top_architectures": path, "architectures": oracle.top_architectures(),
            "seconds": round(time.time() - t0, 1), "resets": state["resets"],
            "reward_by_stage": reward_trend(state["rewards"], oracle_cfg)}


def reward_trend(rewards, oracle_cfg: OracleConfig) -> list:
    """Per stage, the mean controller reward of its first and of its last iteration.

    Args:
      rewards: [iteration, kind, reward] rows, as the tuner records them.
    """
    out = []
    for stage in range(len(oracle_cfg.iterations_per_stage)):
        first, last = oracle_cfg.first_iteration(stage), oracle_cfg.last_iteration(stage)
        means = []
        for it in (first, last):
            r = [row[2] for row in rewards if row[0] == it and row[1] == "controller"]
            means.append(round(sum(r) / len(r), 4) if r else None)
        out.append({"stage": stage, "first_iteration_mean": means[0],
                    "last_iteration_mean": means[1]})
    return out
