"""Runs a whole AutoGAN search: builds the oracle and tuner, runs them, returns its summary.

`build_search` checks everything before it writes anything: the dataset and the classifier,
that no other process uses the search directory (it locks it), and that a saved search there
was started with the same configuration; only then does `--overwrite` move an earlier search
aside and `run_search` record the flags.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Optional

import keras_tuner
import tensorflow as tf

from autogan_tf import rundir
from autogan_tf.errors import AutoGANError, ClassifierError, DatasetError, SearchError
from autogan_tf.search import summary as summary_lib
from autogan_tf.search.oracle import AutoGANOracle, OracleConfig
from autogan_tf.search.tuner import AutoGANTuner, SharedTrainingConfig, reward_objective
from autogan_tf.training import distribute

__all__ = ["SearchError", "run_search", "build_search", "reported_errors"]


@contextlib.contextmanager
def reported_errors():
    """Re-raises the error that stopped a keras-tuner search (which wraps it in a FatalError)
    when it is one of ours or an `OSError`, so binaries report it in one line; a FatalError
    of any other cause (a bug) keeps its traceback."""
    try:
        yield
    except keras_tuner.errors.FatalError as e:
        cause = e.__cause__
        if isinstance(cause, (AutoGANError, OSError)):
            raise cause from None
        if isinstance(cause, tf.errors.OpError):
            raise cause from e
        raise


def build_search(oracle_cfg: OracleConfig, train_cfg: SharedTrainingConfig, run_dir: str,
                 overwrite: bool = False, strategy: Optional[tf.distribute.Strategy] = None):
    """The oracle and tuner of a search in `run_dir/search` (resumed unless `overwrite`).

    The tuner holds the search directory's lock: call `tuner.close()` when done.

    Raises:
      SearchError: bad inputs (the dataset or the classifier; nothing is written), or a saved
        state that cannot be read.
      RunDirError: another process uses the search directory.
      ConfigError: the saved search was started with other settings (naming them).
      CheckpointError: the saved shared-GAN checkpoint cannot be restored.
    """
    oracle = AutoGANOracle(oracle_cfg, objective=reward_objective(train_cfg.reward))
    with reported_errors():
        try:
            tuner = AutoGANTuner(oracle, train_cfg, directory=run_dir, project_name="search",
                                 overwrite=overwrite, strategy=strategy)
        except (DatasetError, ClassifierError) as e:
            raise SearchError(str(e)) from e
        except FileNotFoundError as e:  # the controller checkpoint the oracle state names
            raise SearchError(f"{e}; restore it from a backup, or run the search in another "
                              "--run_dir") from e
    return oracle, tuner


def run_search(oracle_cfg: OracleConfig, train_cfg: SharedTrainingConfig, run_dir: str,
               overwrite: bool = False, strategy: Optional[tf.distribute.Strategy] = None,
               flags_text: Optional[str] = None, report: Optional[Callable[[str], None]] = None,
               keras_tuner_verbose: int = 0) -> dict:
    """Runs (or resumes) a search to the end.

    Args:
      oracle_cfg, train_cfg: the search's configuration.
      run_dir: the run directory (the search writes `<run_dir>/search/`).
      overwrite: move an earlier search aside and start afresh instead of resuming.
      strategy: optional `tf.distribute.Strategy` for the shared GAN. Under a multi-worker
        strategy every task runs the same search with a run directory of its own
        (`distribute.task_dir`); it returns when all have finished.
      flags_text: the binary's flags: `flags.txt` of a new search; a resume that differs
        records them in `flags.resumed-<time>.txt`.
      report: where one-line progress messages go (e.g. `print`); absl logging when None.
      keras_tuner_verbose: 1 shows keras-tuner's own per-trial tables.

    Returns:
      The search summary (see `autogan_tf.search.summary`: what summary.json holds) plus
      `architectures` (the top-K again), `top_architectures_file`, `summary_file` and
      `project_dir`.
    """
    oracle, tuner = build_search(oracle_cfg, train_cfg, run_dir, overwrite, strategy)
    try:
        tuner.report = report
        # A new (or moved-aside) search directory has no flags.txt yet: it gets one.
        rundir.record_flags(tuner.project_dir, flags_text, resumed=True)
        with reported_errors():
            tuner.search(verbose=keras_tuner_verbose)
        path = tuner.write_top_architectures()
        summary = tuner.write_summary()
    finally:
        tuner.close()
    distribute.barrier(strategy)  # multi-worker: every task has finished
    return dict(summary, architectures=oracle.top_architectures(), top_architectures_file=path,
                summary_file=os.path.join(tuner.project_dir, summary_lib.SUMMARY_FILE),
                project_dir=tuner.project_dir)
