"""The AutoGAN search algorithm as a keras-tuner Oracle: controllers, REINFORCE and MLAS beam.

`AutoGANOracle` decides which child architecture each keras-tuner trial scores and learns from
the scores (SPEC section 4). It owns one `Controller` per stage, trains it with `Reinforce`
and runs the multi-level (beam) search over the three generator cells. Training the shared
GAN and computing the Inception Score of a child are the Tuner's job.

Trial schedule (handed out strictly one at a time, in this order)::

    for stage s in 0, 1, 2:
        for each iteration i of stage s (global numbering: stage 0 has 0..n0-1, stage 1 follows):
            controller_steps * controller_batch trials of kind 'controller'
                (every controller_batch rewards -> one REINFORCE update)
        num_candidates trials of kind 'beam'               (iteration = the stage's last one)
        -> keep the top_k candidates (tokens + final LSTM state) as the beam of stage s;
           stage s + 1 gets a new controller that starts from a beam member's state

Each trial's hyperparameter values are::

    {'arch': '1 0 1 1' (the tokens of the cells searched so far: 4, 9 or 14 integers),
     'stage': s, 'iteration': i, 'kind': 'controller' | 'beam', 'step': k}

Baselines and ablations (paper section 4.3) change the schedule or the sampling:

* `sampler='uniform'`: random search with weight sharing. Every architecture (training
  minibatches, 'controller' trials, beam candidates) is drawn uniformly, token by token; the
  controller is not trained. Schedule and beam as above.
* `mlas=False`: single-level search. One stage (numbered 2: the full generator and
  discriminator from the start) of sum(iterations_per_stage) iterations, one controller over
  all 14 tokens, no growing; its final M candidates give the top K.
* `weight_sharing=False` (needs `sampler='uniform'`): random search without weight sharing.
  One stage at full size; each iteration is one 'controller' trial whose uniformly drawn
  architecture the Tuner trains from scratch for the iteration's D-step budget and scores.
  The top K of all of them are the result; there are no beam trials.

The policy's entropy and KL divergence from uniform are recorded at the start and the end of
each stage (`policy_record`); `policy_eval_architectures` draws the fixed sets on which the
Tuner measures the expected reward of the final policy against the uniform policy.

A Tuner trains the shared GAN for iteration i before scoring the trial with
kind == 'controller' and step == 0, growing the GAN when the stage changes; it samples the
architecture of every training minibatch with `AutoGANOracle.sample_architectures`, and
returns `{'inception_score': IS}` from `run_trial`.

State: everything except the controller weights goes through `get_state`/`set_state` (JSON);
the controller weights and Adam slots go to a TF checkpoint under `<project>/controller/`,
written by `save()` before the JSON that names it and restored by `set_state` (so by
`reload()`).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Optional

import keras_tuner
import numpy as np
from keras_tuner.engine.trial import TrialStatus

from autogan_tf import rundir
from autogan_tf import search_space
from autogan_tf import seeds
from autogan_tf.search.controller import Controller, Reinforce, policy_statistics

__all__ = [
    "OracleConfig",
    "AutoGANOracle",
    "CONTROLLER",
    "BEAM",
    "DEFAULT_OBJECTIVE",
    "SAMPLERS",
    "trial_architecture",
    "uniform_tokens",
]

CONTROLLER = "controller"
BEAM = "beam"
DEFAULT_OBJECTIVE = "inception_score"
SAMPLERS = ("controller", "uniform")
_CKPT_DIR = "controller"
_CKPT_PREFIX = "ctrl-"


@dataclasses.dataclass(frozen=True)
class OracleConfig:
    """The search schedule and the controller's training settings.

    Defaults follow the reference search script (SPEC section 4).

    Attributes:
      iterations_per_stage: search iterations of each stage (stage 0 iterations 0-14, stage 1
        15-34, stage 2 35-64 by default; 65 in all).
      controller_steps: REINFORCE updates of the controller per iteration.
      controller_batch: architectures scored per update (1 in the reference); an iteration
        has controller_steps * controller_batch controller trials.
      num_candidates: M, architectures sampled and scored at the end of a stage.
      top_k: K, the beam width kept from the M candidates.
      controller_lr: Adam learning rate of the controller (0 freezes it: the control run).
      controller_beta_1: Adam beta_1 (the reference passes its GAN betas (0.0, 0.9)).
      controller_beta_2: Adam beta_2.
      entropy_coef: entropy bonus weight (1e-3 reference code; the paper says 1e-4).
      baseline_decay: moving-average decay of the REINFORCE baseline.
      reset_baseline_each_iteration: forget the baseline at the start of every iteration, as
        the reference does (the shared GAN, hence the reward scale, moves between iterations).
      hidden_size: controller LSTM/embedding width.
      sampler: 'controller' (AutoGAN) or 'uniform' (random search).
      mlas: multi-level search (grow cell by cell, beam); False: single-level search.
      weight_sharing: False: random search that trains each architecture from scratch.
      policy_eval_archs: architectures drawn from the final policy and from the uniform policy
        at the end of each stage to measure their expected rewards (0: not measured).
      seed: seeds the controllers' initialisation and every random choice of the oracle.
    """

    iterations_per_stage: tuple = (15, 20, 30)
    controller_steps: int = 30
    controller_batch: int = 1
    num_candidates: int = 10
    top_k: int = 5
    controller_lr: float = 3.5e-4
    controller_beta_1: float = 0.0
    controller_beta_2: float = 0.9
    entropy_coef: float = 1e-3
    baseline_decay: float = 0.9
    reset_baseline_each_iteration: bool = True
    hidden_size: int = 100
    sampler: str = "controller"
    mlas: bool = True
    weight_sharing: bool = True
    policy_eval_archs: int = 20
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "iterations_per_stage",
                           tuple(int(n) for n in self.iterations_per_stage))
        if len(self.iterations_per_stage) != search_space.NUM_CELLS:
            raise ValueError(f"iterations_per_stage needs {search_space.NUM_CELLS} entries (one "
                             f"per cell), got {self.iterations_per_stage}")
        if min(self.iterations_per_stage) < 1:
            raise ValueError(f"every stage needs >= 1 iteration: {self.iterations_per_stage}")
        if self.controller_steps < 1:
            raise ValueError(f"controller_steps must be >= 1, got {self.controller_steps}")
        if self.controller_batch < 1:
            raise ValueError(f"controller_batch must be >= 1, got {self.controller_batch}")
        if not 1 <= self.top_k <= self.num_candidates:
            raise ValueError(f"need 1 <= top_k <= num_candidates, got top_k={self.top_k}, "
                             f"num_candidates={self.num_candidates}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ValueError(f"baseline_decay must be in [0, 1), got {self.baseline_decay}")
        if self.controller_lr < 0:
            raise ValueError(f"controller_lr must be >= 0 (0 freezes the controller), got "
                             f"{self.controller_lr}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if not self.weight_sharing and self.sampler != "uniform":
            raise ValueError("search without weight sharing is random search: it needs "
                             "sampler='uniform' (--sampler=uniform)")
        if self.policy_eval_archs < 0:
            raise ValueError(f"policy_eval_archs must be >= 0, got {self.policy_eval_archs}")

    @property
    def stages(self) -> tuple:
        """The search stages in order, as (GAN stage, first searched cell, iterations).

        Multi-level search: (0, 0, n0), (1, 1, n1), (2, 2, n2). Single-level search and search
        without weight sharing: one stage (2, 0, n0 + n1 + n2) over all 14 tokens.
        """
        if self.mlas and self.weight_sharing:
            return tuple((s, s, n) for s, n in enumerate(self.iterations_per_stage))
        last = search_space.NUM_CELLS - 1
        return ((last, 0, sum(self.iterations_per_stage)),)

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def trials_per_iteration(self) -> int:
        """'controller' trials of one iteration."""
        if not self.weight_sharing:
            return 1
        return self.controller_steps * self.controller_batch

    @property
    def num_iterations(self) -> int:
        """Search iterations over all stages."""
        return sum(self.iterations_per_stage)

    @property
    def total_trials(self) -> int:
        """Trials of a complete search (controller and beam trials)."""
        beam = self.num_stages * self.num_candidates if self.weight_sharing else 0
        return self.num_iterations * self.trials_per_iteration + beam

    def first_iteration(self, stage: int) -> int:
        """Global index of the first iteration of search stage `stage` (an index of `stages`)."""
        return sum(n for _, _, n in self.stages[:stage])

    def last_iteration(self, stage: int) -> int:
        """Global index of the last iteration of search stage `stage`."""
        return self.first_iteration(stage) + self.stages[stage][2] - 1

    def stage_of_iteration(self, iteration: int) -> int:
        """The search stage (index of `stages`) a global iteration index belongs to."""
        for s in range(self.num_stages):
            if iteration <= self.last_iteration(s):
                return s
        raise ValueError(f"iteration {iteration} is past the last one ({self.num_iterations - 1})")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["iterations_per_stage"] = list(self.iterations_per_stage)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "OracleConfig":
        return cls(**d)


def uniform_tokens(rng: np.random.Generator, sizes, n: int) -> np.ndarray:
    """int32 [n, len(sizes)]: each token drawn uniformly from its options, independently."""
    return np.stack([rng.integers(0, k, size=n) for k in sizes], axis=1).astype(np.int32)


def trial_architecture(hyperparameters) -> search_space.Architecture:
    """The (partial) architecture a trial scores, from its hyperparameter values.

    Args:
      hyperparameters: `trial.hyperparameters` of a trial handed out by `AutoGANOracle`.

    Returns:
      An `Architecture` of 4, 9 or 14 tokens; `.padded()` gives the 14 the supernet takes.
    """
    return search_space.Architecture.parse(hyperparameters.get("arch"), allow_partial=True)


def _values_of(arch, stage, iteration, kind, step) -> dict:
    return {
        "arch": " ".join(str(int(t)) for t in arch),
        "stage": int(stage),
        "iteration": int(iteration),
        "kind": kind,
        "step": int(step),
    }


class AutoGANOracle(keras_tuner.Oracle):
    """keras-tuner Oracle running AutoGAN's controller search with MLAS beam search.

    Args:
      config: the schedule and controller settings (`OracleConfig()` when None).
      objective: the reward to maximise; `Objective('inception_score', 'max')` when None.
      max_retries_per_trial: keras-tuner retries of a crashed trial (same values).
      max_consecutive_failed_trials: keras-tuner's limit before it stops the search.

    Attributes:
      last_update_metrics: the scalars of the latest REINFORCE update (loss, baseline,
        advantage, entropy, log_prob, reward, batch, plus stage, iteration, step, trial_id) for
        TensorBoard, or None before the first update.
    """

    def __init__(self, config: Optional[OracleConfig] = None, objective=None,
                 max_retries_per_trial: int = 0, max_consecutive_failed_trials: int = 3):
        self._config = config or OracleConfig()
        hps = keras_tuner.HyperParameters()
        for name, default in _values_of((), 0, 0, CONTROLLER, 0).items():
            hps.Fixed(name, default)
        super().__init__(
            objective=objective or keras_tuner.Objective(DEFAULT_OBJECTIVE, direction="max"),
            max_trials=self._config.total_trials,
            hyperparameters=hps,
            seed=self._config.seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self._reset_search()

    # ----- search state ---------------------------------------------------------------------
    def _reset_search(self) -> None:
        cfg = self._config
        self._phase = 0  # index into cfg.stages
        self._iteration = 0
        self._kind = CONTROLLER
        self._step = 0
        self._finished = False
        self._pending = None  # the trial handed out and not yet resolved
        self._beam_candidates = None  # the M candidates of the current stage's beam phase
        self._beams = []  # per finished stage: top-K members (arch, reward, h, c, trial_id)
        self._batch = []  # scored controller trials waiting for the next REINFORCE update
        self._policy = []  # per stage: entropy and KL from uniform at its start and end
        # Two streams: trials (prefix choice, sampling seeds) and shared-GAN training samples,
        # so the number of training minibatches never changes which children are scored.
        self._rng = seeds.numpy_rng(cfg.seed, "oracle", 0)
        self._train_rng = seeds.numpy_rng(cfg.seed, "oracle", 1)
        self.last_update_metrics = None
        self._new_controller()
        self._start_stage()

    def _new_controller(self) -> None:
        cfg = self._config
        stage, first, _ = cfg.stages[self._phase]
        self._controller = Controller(stage, hidden_size=cfg.hidden_size,
                                      seed=seeds.derive(cfg.seed, "controller_init", stage),
                                      first_stage=first)
        self._reinforce = Reinforce(
            self._controller, learning_rate=cfg.controller_lr, entropy_coef=cfg.entropy_coef,
            baseline_decay=cfg.baseline_decay, beta_1=cfg.controller_beta_1,
            beta_2=cfg.controller_beta_2)
        self._updates = 0  # REINFORCE updates of this stage's controller
        self._ckpt_key = None  # (stage, updates) of the checkpoint on disk, if current
        self._ckpt_name = None

    def _start_stage(self) -> None:
        """Records the fresh policy's statistics; collects candidates without a beam phase."""
        stats = self.policy_statistics()
        cfg = self._config
        stage, first, _ = cfg.stages[self._phase]
        self._policy.append({
            "stage": stage, "cells": list(range(first, stage + 1)),
            "first_iteration": cfg.first_iteration(self._phase),
            "last_iteration": cfg.last_iteration(self._phase),
            "max_entropy": stats["max_entropy"], "exact": stats["exact"],
            "entropy_start": stats["entropy"], "kl_uniform_start": stats["kl_uniform"],
            "entropy_end": None, "kl_uniform_end": None, "updates": 0})
        if not cfg.weight_sharing:
            self._beam_candidates = []

    def _end_policy(self) -> None:
        stats = self.policy_statistics()
        self._policy[self._phase].update(entropy_end=stats["entropy"],
                                         kl_uniform_end=stats["kl_uniform"],
                                         updates=self._updates)

    # ----- public views ---------------------------------------------------------------------
    @property
    def config(self) -> OracleConfig:
        return self._config

    @property
    def controller(self) -> Controller:
        """The current stage's controller."""
        return self._controller

    @property
    def reinforce(self) -> Reinforce:
        """The current controller's REINFORCE trainer (optimizer, baseline)."""
        return self._reinforce

    @property
    def current_stage(self) -> int:
        """The GAN stage (0, 1, 2: how many cells the shared GAN has, minus one) in use now."""
        return self._config.stages[self._phase][0]

    @property
    def current_search_stage(self) -> int:
        """The index of the current search stage in `config.stages` (= `current_stage` in MLAS)."""
        return self._phase

    @property
    def current_iteration(self) -> int:
        return self._iteration

    @property
    def current_kind(self) -> str:
        """'controller' or 'beam': the kind of the next (or running) trial."""
        return self._kind

    @property
    def current_step(self) -> int:
        return self._step

    @property
    def is_finished(self) -> bool:
        return self._finished

    @property
    def completed_stages(self) -> int:
        """How many search stages have selected their beam (0 to 3)."""
        return len(self._beams)

    def policy_record(self) -> list:
        """Per search stage so far: entropy and KL from uniform at its start and its end.

        Returns:
          A list of dicts with stage (GAN stage), cells, first_iteration, last_iteration,
          max_entropy (log of the number of choices), exact, entropy_start, kl_uniform_start,
          entropy_end, kl_uniform_end (None until the stage's last update) and updates.
        """
        return [dict(r, cells=list(r["cells"])) for r in self._policy]

    def beam(self, stage: int) -> list:
        """The beam kept at the end of search stage `stage`: dicts with arch, reward, h, c,
        trial_id.

        Raises:
          ValueError: if that stage's beam has not been selected yet.
        """
        if not 0 <= stage < len(self._beams):
            raise ValueError(f"no beam for stage {stage} yet ({len(self._beams)} stage(s) done)")
        return [dict(m, arch=list(m["arch"]), h=list(m["h"]), c=list(m["c"]))
                for m in self._beams[stage]]

    def top_architectures(self, stage: Optional[int] = None) -> list:
        """The top-K architectures of a search stage's beam, best first.

        Args:
          stage: which search stage; the last finished one when None (after the search: the
            final beam of full 14-token architectures).

        Returns:
          A list of {'arch': [int, ...], 'reward': float or None (a failed trial)}.
        """
        if stage is None:
            stage = len(self._beams) - 1
        return [{"arch": m["arch"], "reward": m["reward"]} for m in self.beam(stage)]

    @keras_tuner.synchronized
    def sample_architectures(self, n: int, seed=None) -> np.ndarray:
        """Samples `n` architectures from the current policy, for shared-GAN training.

        The policy is the current controller, or the uniform one with `sampler='uniform'`. At
        stage s >= 1 of multi-level search each row's prefix (cells 0..s-1) is a uniformly
        chosen member of the previous stage's beam and the controller starts from that
        member's LSTM state. Sample many rows at once where possible: one call costs about the
        same for 1 or 1,000 rows.

        Args:
          n: number of architectures.
          seed: None to draw from the oracle's own training stream (saved with its state), or
            an int / `np.random.Generator` for an independent stream.

        Returns:
          int32 [n, 14]: the tokens of cells 0..s, zero-padded to the full length.
        """
        if isinstance(seed, np.random.Generator):
            rng = seed
        elif seed is None:
            rng = self._train_rng
        else:
            rng = np.random.default_rng(seed)
        prefix, idx, state = self._draw_prefixes(rng, n)
        return self._padded(prefix, self._sample_tokens(rng, n, state))

    def policy_eval_architectures(self) -> tuple:
        """Fixed sets of architectures from the current policy and from the uniform policy.

        Drawn from the stream `policy_eval` of this search stage, `policy_eval_archs` of each;
        row i of both sets has the same prefix (beam member), so the two sets differ only in
        the current stage's tokens. With `sampler='uniform'` both are uniform draws (their
        difference shows the noise of the comparison).

        Returns:
          (policy, uniform): int32 [n, 14] each.
        """
        cfg = self._config
        n = cfg.policy_eval_archs
        rng = seeds.numpy_rng(cfg.seed, "policy_eval", self._phase)
        prefix, _, state = self._draw_prefixes(rng, n)
        policy = self._sample_tokens(rng, n, state)
        uniform = uniform_tokens(rng, self._controller.token_sizes, n)
        return self._padded(prefix, policy), self._padded(prefix, uniform)

    def policy_statistics(self) -> dict:
        """Entropy and KL from uniform of the current sampling policy (see
        `controller.policy_statistics`); exactly uniform with `sampler='uniform'`."""
        if self._config.sampler == "uniform":
            h = float(np.log(self._controller.num_sequences))
            return {"entropy": h, "kl_uniform": 0.0, "max_entropy": h, "exact": True}
        state = None
        if self._phase > 0:
            beam = self._beams[self._phase - 1]
            state = (np.array([m["h"] for m in beam], np.float32),
                     np.array([m["c"] for m in beam], np.float32))
        return policy_statistics(self._controller, state,
                                 seed=seeds.derive(self._config.seed, "policy_eval", self._phase))

    # ----- sampling -------------------------------------------------------------------------
    def _padded(self, prefix: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        out = np.zeros([tokens.shape[0], search_space.ARCH_LENGTH], np.int32)
        out[:, :prefix.shape[1]] = prefix
        out[:, self._controller.token_slice] = tokens
        return out

    def _sample_tokens(self, rng: np.random.Generator, n: int, state) -> np.ndarray:
        """int32 [n, T]: the current stage's tokens from the sampling policy."""
        if self._config.sampler == "uniform":
            return uniform_tokens(rng, self._controller.token_sizes, n)
        return self._controller.sample(n, state, seed=rng).tokens.numpy()

    def _draw_prefixes(self, rng: np.random.Generator, n: int):
        """Prefix tokens [n, P], beam indices (or None) and initial LSTM state (or None)."""
        if self._phase == 0:
            return np.zeros([n, 0], np.int32), None, None
        beam = self._beams[self._phase - 1]
        idx = rng.integers(0, len(beam), size=n)
        prefix = np.array([beam[i]["arch"] for i in idx], np.int32)
        h = np.array([beam[i]["h"] for i in idx], np.float32)
        c = np.array([beam[i]["c"] for i in idx], np.float32)
        return prefix, idx, (h, c)

    def _prefix_states(self, indices):
        """The LSTM states (h, c) [B, H] of the given beam members, or None at stage 0."""
        if self._phase == 0 or indices is None or any(i is None for i in indices):
            return None
        beam = self._beams[self._phase - 1]
        return (np.array([beam[i]["h"] for i in indices], np.float32),
                np.array([beam[i]["c"] for i in indices], np.float32))

    def _candidate(self, arch, prefix_index, h, c) -> dict:
        return {"arch": [int(t) for t in arch],
                "prefix_index": None if prefix_index is None else int(prefix_index),
                "h": [float(v) for v in h], "c": [float(v) for v in c],
                "reward": None, "trial_id": None}

    def _final_states(self, tokens: np.ndarray, indices) -> tuple:
        """The controller's final LSTM state after `tokens` [B, T] (teacher-forced)."""
        _, _, (h, c) = self._controller.log_prob_and_entropy(
            tokens, self._prefix_states(indices))
        return h.numpy(), c.numpy()

    def _sample_beam_candidates(self) -> list:
        m = self._config.num_candidates
        prefix, idx, state = self._draw_prefixes(self._rng, m)
        if self._config.sampler == "uniform":
            tokens = uniform_tokens(self._rng, self._controller.token_sizes, m)
            h, c = self._final_states(tokens, None if idx is None else list(idx))
        else:
            sample = self._controller.sample(m, state, seed=self._rng)
            tokens = sample.tokens.numpy()
            h, c = (s.numpy() for s in sample.state)
        return [self._candidate(np.concatenate([prefix[i], tokens[i]]),
                                None if idx is None else idx[i], h[i], c[i])
                for i in range(m)]

    # ----- keras-tuner hooks ----------------------------------------------------------------
    def populate_space(self, trial_id):
        """Hands out the next trial of the schedule (see the module docstring).

        Returns IDLE while the previous trial is still running (trials go strictly in order)
        and STOPPED after the last stage's beam trials.
        """
        self._resolve_pending()
        if self._finished:
            return {"status": TrialStatus.STOPPED, "values": None}
        if self._pending is not None:
            return {"status": TrialStatus.IDLE, "values": None}
        if self._kind == CONTROLLER:
            prefix, idx, state = self._draw_prefixes(self._rng, 1)
            tokens = self._sample_tokens(self._rng, 1, state)[0]
            arch = [int(t) for t in np.concatenate([prefix[0], tokens])]
            prefix_index = None if idx is None else int(idx[0])
        else:
            if self._beam_candidates is None:
                self._beam_candidates = self._sample_beam_candidates()
            cand = self._beam_candidates[self._step]
            cand["trial_id"] = trial_id
            arch, prefix_index = cand["arch"], cand["prefix_index"]
        self._pending = {"trial_id": trial_id, "kind": self._kind, "arch": arch,
                         "prefix_index": prefix_index, "step": self._step}
        values = _values_of(arch, self.current_stage, self._iteration, self._kind, self._step)
        return {"status": TrialStatus.RUNNING, "values": values}

    @keras_tuner.synchronized
    def end_trial(self, trial):
        """Records the trial (keras-tuner), then learns from it and moves the schedule on.

        'controller' trials' scores are the rewards of REINFORCE updates (one update per
        `controller_batch` of them); a 'beam' trial's score ranks its candidate. A trial sent
        for retry (INVALID) holds the schedule until it ends; a FAILED trial is skipped (no
        update; ranked last in a beam).
        """
        super().end_trial(trial)
        if self._resolve_pending():
            self.save()

    def _resolve_pending(self) -> bool:
        """Consumes the handed-out trial once keras-tuner has ended it; True if it did.

        Also called from `populate_space` and `reload`, so a crash between keras-tuner's
        bookkeeping and this step is caught up on resume.
        """
        p = self._pending
        if p is None:
            return False
        trial = self.trials.get(p["trial_id"])
        if trial is None or p["trial_id"] not in self.end_order:
            return False
        reward = None
        if trial.status == TrialStatus.COMPLETED and trial.score is not None:
            reward = float(trial.score)
        cfg = self._config
        if p["kind"] == CONTROLLER:
            if not cfg.weight_sharing:
                cand = self._candidate(p["arch"], None, [], [])
                cand.update(reward=reward, trial_id=p["trial_id"])
                self._beam_candidates.append(cand)
            elif reward is not None and cfg.sampler == "controller":
                self._batch.append(dict(p, reward=reward))
                if len(self._batch) == cfg.controller_batch:
                    self._learn()
        else:
            self._beam_candidates[p["step"]]["reward"] = reward
        self._pending = None
        self._advance()
        return True

    def _learn(self) -> None:
        """One REINFORCE update from the scored trials in `_batch`."""
        batch, self._batch = self._batch, []
        tokens = np.array([np.asarray(b["arch"], np.int32)[self._controller.token_slice]
                           for b in batch])
        state = self._prefix_states([b["prefix_index"] for b in batch])
        metrics = self._reinforce.update(tokens, [b["reward"] for b in batch], state)
        self._updates += 1
        self.last_update_metrics = dict(metrics, batch=len(batch), stage=self.current_stage,
                                        iteration=self._iteration, step=batch[-1]["step"],
                                        trial_id=batch[-1]["trial_id"])

    def _advance(self) -> None:
        cfg = self._config
        self._step += 1
        if self._kind == CONTROLLER:
            if self._step < cfg.trials_per_iteration:
                return
            if self._batch:  # a batch left short by failed trials
                self._learn()
            self._step = 0
            if self._iteration == cfg.last_iteration(self._phase):
                self._end_policy()
                if not cfg.weight_sharing:
                    self._finish_stage()
                    return
                self._kind = BEAM
                self._beam_candidates = None
            else:
                self._iteration += 1
                if cfg.reset_baseline_each_iteration:
                    self._reinforce.reset_baseline()
        elif self._step >= cfg.num_candidates:
            self._finish_stage()

    def _finish_stage(self) -> None:
        """Keeps the top-K distinct candidates as the beam; starts the next stage's controller."""
        cands = self._beam_candidates
        if not self._config.weight_sharing and cands:  # LSTM states of the scored trials
            tokens = np.array([np.asarray(c["arch"], np.int32)[self._controller.token_slice]
                               for c in cands])
            h, c = self._final_states(tokens, None)
            for i, cand in enumerate(cands):
                cand["h"], cand["c"] = [float(v) for v in h[i]], [float(v) for v in c[i]]
        order = sorted(range(len(cands)), key=lambda i: (
            cands[i]["reward"] is None, -(cands[i]["reward"] or 0.0), i))
        beam, seen = [], set()
        for i in order:
            cand = cands[i]
            key = tuple(cand["arch"])
            if key in seen:  # the same tokens give the same LSTM state: keep the best score
                continue
            seen.add(key)
            beam.append({k: cand[k] for k in ("arch", "reward", "h", "c", "trial_id")})
            if len(beam) == self._config.top_k:
                break
        self._beams.append(beam)
        self._beam_candidates = None
        self._step = 0
        if self._phase == self._config.num_stages - 1:
            self._finished = True
            return
        self._phase += 1
        self._iteration += 1
        self._kind = CONTROLLER
        self._new_controller()
        self._start_stage()

    # ----- persistence ----------------------------------------------------------------------
    def _ckpt_path(self, name: str) -> str:
        return os.path.join(self._project_dir, _CKPT_DIR, name)

    def save(self):
        """Writes the controller checkpoint (if it changed), then keras-tuner's JSON state."""
        key = (self._phase, self._updates)
        if key != self._ckpt_key:
            name = f"{_CKPT_PREFIX}s{self._phase}-u{self._updates:06d}"
            os.makedirs(os.path.dirname(self._ckpt_path(name)), exist_ok=True)
            self._reinforce.checkpoint().write(self._ckpt_path(name))
            self._ckpt_key, self._ckpt_name = key, name
        # keras-tuner's own save truncates the file before writing it: a kill in between left
        # an empty oracle.json that no resume could read.
        rundir.write_json(self._get_oracle_fname(), self.get_state(), indent=None)
        # Only now that the JSON names the new checkpoint may older ones go.
        for path in glob.glob(self._ckpt_path(_CKPT_PREFIX + "*")):
            if not os.path.basename(path).startswith(self._ckpt_name + "."):
                os.remove(path)

    def _save_trial(self, trial):
        """Writes the trial's JSON atomically (a kill mid-write keeps the previous file)."""
        rundir.write_json(os.path.join(self._get_trial_dir(trial.trial_id), "trial.json"),
                          trial.get_state(), indent=None)

    def reload(self):
        """Reloads trials and state, restores the controller, and catches up an ended trial.

        keras-tuner's `end_trial` saves before it drops the trial from `ongoing_trials`, so a
        crash in between reloads an already ended trial as ongoing and queues it for a re-run;
        such trials (those in `end_order`, which only final results enter) are not re-run.
        """
        super().reload()
        ended = set(self.end_order)
        self._retry_queue = [t for t in self._retry_queue if t not in ended]
        self._resolve_pending()

    def get_state(self):
        state = super().get_state()
        state["autogan"] = {
            "config": self._config.to_dict(),
            "stage": self.current_stage,
            "phase": self._phase,
            "iteration": self._iteration,
            "kind": self._kind,
            "step": self._step,
            "finished": self._finished,
            "pending": self._pending,
            "beam_candidates": self._beam_candidates,
            "beams": self._beams,
            "batch": self._batch,
            "policy": self._policy,
            "baseline": self._reinforce.baseline,
            "updates": self._updates,
            "controller_checkpoint": self._ckpt_name,
            "rng": self._rng.bit_generator.state,
            "train_rng": self._train_rng.bit_generator.state,
            "last_update_metrics": self.last_update_metrics,
        }
        return state

    def set_state(self, state):
        """Restores the JSON state and, once a project directory is set, the checkpoint it names.

        Without a project directory (a bare `set_state`) the controller keeps its fresh
        (seeded) initialisation.

        Raises:
          ConfigError: if the state was written with a different `OracleConfig` (naming the
            fields that differ).
          FileNotFoundError: if the named controller checkpoint is missing.
        """
        s = state["autogan"]
        rundir.check_resume(s["config"], self._config.to_dict(), "the saved search",
                            defaults=OracleConfig().to_dict(),
                            fix=", or pass --overwrite to move it aside and start afresh")
        super().set_state(state)
        self._phase = s.get("phase", s["stage"])  # states before single-level search: = stage
        self._new_controller()
        self._iteration = s["iteration"]
        self._kind = s["kind"]
        self._step = s["step"]
        self._finished = s["finished"]
        self._pending = s["pending"]
        self._beam_candidates = s["beam_candidates"]
        self._beams = s["beams"]
        self._batch = s.get("batch", [])
        self._policy = s.get("policy", [])
        self._reinforce.baseline = s["baseline"]
        self._updates = s["updates"]
        self._rng.bit_generator.state = s["rng"]
        self._train_rng.bit_generator.state = s["train_rng"]
        self.last_update_metrics = s["last_update_metrics"]
        name = s["controller_checkpoint"]
        if name and getattr(self, "_directory", None) is not None:
            path = self._ckpt_path(name)
            if not os.path.exists(path + ".index"):
                raise FileNotFoundError(f"the oracle state names the controller checkpoint "
                                        f"{path}, which is missing")
            status = self._reinforce.checkpoint().read(path)
            status.assert_existing_objects_matched()
            self._ckpt_key, self._ckpt_name = (self._phase, self._updates), name
