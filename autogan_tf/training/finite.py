"""NaN/Inf guards of training and search: find non-finite losses and weights, apply the policy.

Training and the search's shared GAN check every step's losses, and all weights before each
checkpoint, before `best/` and before scoring; a non-finite model is never saved. What happens
then is the run's `on_nonfinite` policy:

* ``restore`` (default): restore the last good checkpoint and go on (later data batches differ,
  so a rare blow-up need not repeat); after `MAX_RESTORES` restores without a new good
  checkpoint in between, stop as ``stop`` does.
* ``stop``: stop at once with a `NonFiniteError` naming what diverged and where, and pointing
  at the last good checkpoint (a later start resumes from it).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import tensorflow as tf

from autogan_tf.errors import ConfigError, NonFiniteError

__all__ = ["ON_NONFINITE", "MAX_RESTORES", "check_policy", "nonfinite_losses",
           "nonfinite_variables", "NonFiniteGuard"]

ON_NONFINITE = ("restore", "stop")
MAX_RESTORES = 3


def check_policy(policy: str) -> None:
    """Raises ConfigError unless `policy` is one of `ON_NONFINITE`."""
    if policy not in ON_NONFINITE:
        raise ConfigError(f"on_nonfinite must be one of {', '.join(ON_NONFINITE)}, got "
                          f"{policy!r}")


def nonfinite_losses(losses: Mapping) -> list:
    """Names of the losses (a name -> float dict; None entries skipped) that are NaN or Inf."""
    return [k for k, v in losses.items() if v is not None and not math.isfinite(float(v))]


def nonfinite_variables(variables: Iterable) -> list:
    """Names (paths) of the variables holding any NaN or Inf value, in order."""
    bad = []
    for v in variables:
        if tf.as_dtype(v.dtype).is_floating and not np.isfinite(np.asarray(v.numpy())).all():
            bad.append(getattr(v, "path", None) or v.name)
    return bad


class NonFiniteGuard:
    """Counts restores in a row and decides, for one run, between restoring and stopping.

    Args:
      policy: 'restore' or 'stop'.
      what: the run, for messages ('training run runs/x', 'search runs/x/search').
    """

    def __init__(self, policy: str, what: str):
        check_policy(policy)
        self.policy = policy
        self.what = what
        self.restores_in_a_row = 0

    def good_checkpoint(self) -> None:
        """A finite model was saved: the count of restores in a row starts again."""
        self.restores_in_a_row = 0

    def on_nonfinite(self, problem: str, last_good: str) -> None:
        """Called when `problem` (e.g. 'd_loss nan at iteration 12') was found.

        Returns if the caller should restore `last_good` and go on; raises otherwise.

        Raises:
          NonFiniteError: under the 'stop' policy, or after `MAX_RESTORES` restores in a row.
        """
        if self.policy == "stop":
            raise NonFiniteError(
                f"{self.what}: {problem}. Nothing non-finite was saved; the last good "
                f"checkpoint is {last_good}. Start again with --on_nonfinite=restore to resume "
                "from it, or try lower learning rates (--g_lr, --d_lr) with another --run_dir")
        if self.restores_in_a_row >= MAX_RESTORES:
            raise NonFiniteError(
                f"{self.what}: {problem}, again after {MAX_RESTORES} restores of {last_good} in "
                "a row. Nothing non-finite was saved. Try lower learning rates (--g_lr, --d_lr) "
                "with another --run_dir")
        self.restores_in_a_row += 1
