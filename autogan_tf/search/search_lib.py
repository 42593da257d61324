"""Runs a whole AutoGAN search: builds the oracle and tuner, runs them, returns its summary."""

from __future__ import annotations

import os
from typing import Callable, Optional

import tensorflow as tf

from autogan_tf import data as data_lib
from autogan_tf.eval import metrics
from autogan_tf.search import summary as summary_lib
from autogan_tf.search.oracle import AutoGANOracle, OracleConfig
from autogan_tf.search.tuner import AutoGANTuner, SharedTrainingConfig, reward_objective

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
    oracle = AutoGANOracle(oracle_cfg, objective=reward_objective(train_cfg.reward))
    try:
        tuner = AutoGANTuner(oracle, train_cfg, directory=run_dir, project_name="search",
                             overwrite=overwrite, strategy=strategy)
    except (metrics.ClassifierError, FileNotFoundError) as e:
        raise SearchError(str(e)) from e
    return oracle, tuner


def run_search(oracle_cfg: OracleConfig, train_cfg: SharedTrainingConfig, run_dir: str,
               overwrite: bool = False, strategy: Optional[tf.distribute.Strategy] = None,
               flags_text: Optional[str] = None, report: Optional[Callable[[str], None]] = None,
               keras_tuner_verbose: int = 0) -> dict:
    """Runs (or resumes) a search to the end.

    Args:
      oracle_cfg, train_cfg: the search's configuration.
      run_dir: the run directory (the search writes `<run_dir>/search/`).
      overwrite: start afresh instead of resuming.
      strategy: optional `tf.distribute.Strategy` for the shared GAN.
      flags_text: the binary's resolved flags, written to `flags.txt`.
      report: where one-line progress messages go (e.g. `print`); absl logging when None.
      keras_tuner_verbose: 1 shows keras-tuner's own per-trial tables.

    Returns:
      The search summary (see `autogan_tf.search.summary`: what summary.json holds) plus
      `architectures` (the top-K again), `top_architectures_file`, `summary_file` and
      `project_dir`.
    """
    oracle, tuner = build_search(oracle_cfg, train_cfg, run_dir, overwrite, strategy)
    tuner.report = report
    if flags_text is not None:
        with open(os.path.join(tuner.project_dir, "flags.txt"), "w") as f:
            f.write(flags_text)
    tuner.search(verbose=keras_tuner_verbose)
    path = tuner.write_top_architectures()
    summary = tuner.write_summary()
    return dict(summary, architectures=oracle.top_architectures(), top_architectures_file=path,
                summary_file=os.path.join(tuner.project_dir, summary_lib.SUMMARY_FILE),
                project_dir=tuner.project_dir)
