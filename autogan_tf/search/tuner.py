"""The AutoGAN Tuner: trains the shared GAN and scores child architectures (Algorithm 1).

`AutoGANTuner` is the execution half of the search; `AutoGANOracle` is the algorithm half.
For the first controller trial of every search iteration the tuner trains the shared GAN (a new
architecture from the controller for every minibatch, n_critic D steps per G step, the
discriminator and the data resolution growing with the stage) until the epoch budget is spent
or the dynamic-reset detector fires. Every trial is then scored by the reward of its child
architecture through the shared weights in evaluation mode: the Inception Score, or with
`reward='fid'` the FID against cached real statistics, as -ln(FID). A pending dynamic reset
re-initialises G, D and both optimisers before the next iteration's training; the controller
and the beam are kept. Without weight sharing (random-search baseline) each trial's
architecture is trained alone from fresh weights for the iteration's D-step budget instead.

At the end of each stage, before its beam trials, the tuner measures the expected reward of the
final policy and of the uniform policy on the same shared weights with the same latents
(`policy_eval_archs` architectures each). Every search writes `<project>/summary.json` (see
`search.summary`) and PNG plots, and reports one line per trial through `report`.

State survives a kill: the tuner's JSON (keras-tuner `get_state`) names the last shared-GAN
checkpoint (relative to the project directory, so a search directory can be moved or copied),
written before the JSON; a trial killed in flight is re-run by keras-tuner and, being seeded by
its iteration and step, gives the same result. Before anything is written the tuner checks the
dataset and the classifier, locks the project directory, and compares a saved search's
configurations with its own (`RESUME_IGNORED` lists what a resume may change). Losses are
checked every step and weights before every checkpoint: see `training.finite`.
"""

from __future__ import annotations

import collections
import functools
import glob
import json
import os
import time
from typing import Callable, Optional

import keras
import keras_tuner
import numpy as np
import tensorflow as tf
from absl import logging

from autogan_tf import data as data_lib
from autogan_tf import rundir
from autogan_tf import search_space as ss
from autogan_tf import seeds
from autogan_tf.errors import AutoGANError, CheckpointError, SearchError
from autogan_tf.eval import metrics
from autogan_tf.images import log_image_grid
from autogan_tf.nn.discriminator import Discriminator
from autogan_tf.nn.generators import SharedGenerator
from autogan_tf.sampling import LatentSampler, draw_images
from autogan_tf.search import summary as summary_lib
from autogan_tf.search.config import REWARDS, SharedTrainingConfig, fid_reward
from autogan_tf.search.oracle import BEAM, CONTROLLER, AutoGANOracle, trial_architecture
from autogan_tf.training import finite
from autogan_tf.training.gan import GANTrainer, check_replicas, precision_policy

__all__ = ["SharedTrainingConfig", "DynamicReset", "AutoGANTuner", "REWARDS",
           "reward_objective", "fid_reward", "RESUME_IGNORED", "check_inputs"]


def reward_objective(reward: str) -> keras_tuner.Objective:
    """The objective the oracle maximises for a reward kind ('is' or 'fid')."""
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {sorted(REWARDS)}, got {reward!r}")
    return keras_tuner.Objective(REWARDS[reward], direction="max")


RESUME_IGNORED = frozenset({"data_dir", "cache_dir", "log_every", "progress", "on_nonfinite",
                            "gan.jit_compile"})
"""SharedTrainingConfig fields a resumed search may change (they do not change results)."""

_CKPT_SUBDIR = "shared_gan"
_RESUME_FIX = ", or pass --overwrite to move it aside and start afresh"


class DynamicReset:
    """Windows of the last G and D losses; fires when the variance of either falls below the
    threshold (paper section 3.3.1).

    As in the reference code, the check runs only once the G-loss window is full: with
    n_critic D steps per G step the D window fills n_critic times sooner, and a flat D window
    alone cannot fire before `window` G steps have been seen.
    """

    def __init__(self, window: int = 500, threshold: float = 1e-3):
        self.window = int(window)
        self.threshold = float(threshold)
        self.g_losses = collections.deque(maxlen=self.window)
        self.d_losses = collections.deque(maxlen=self.window)

    def update(self, d_loss: Optional[float] = None, g_loss: Optional[float] = None) -> bool:
        """Adds the losses of one step; returns True when a reset is due."""
        if d_loss is not None:
            self.d_losses.append(float(d_loss))
        if g_loss is not None:
            self.g_losses.append(float(g_loss))
        return self.fired()

    def fired(self) -> bool:
        if len(self.g_losses) < self.window:
            return False
        return any(float(np.var(np.asarray(w))) < self.threshold
                   for w in (self.g_losses, self.d_losses))

    def clear(self) -> None:
        self.g_losses.clear()
        self.d_losses.clear()

    def get_state(self) -> dict:
        return {"g_losses": list(self.g_losses), "d_losses": list(self.d_losses)}

    def set_state(self, state: dict) -> None:
        self.clear()
        self.g_losses.extend(state.get("g_losses", []))
        self.d_losses.extend(state.get("d_losses", []))


def check_inputs(config: SharedTrainingConfig, classifier=None):
    """Checks the dataset and the classifier before a search writes anything.

    Returns:
      The loaded classifier.

    Raises:
      DatasetError, ClassifierError: naming the problem and the fix.
    """
    data_lib.check_dataset(config.dataset, config.resolution(2), config.data_dir)
    return metrics.check_classifier(classifier if classifier is not None else config.classifier,
                                    config.resolution(2), config.cache_dir)[0]


def _load_state(path: str) -> Optional[dict]:
    return rundir.read_json(path, SearchError, "run the search in another --run_dir")


class AutoGANTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Trains the weight-shared GAN and scores the oracle's child architectures.

    Construction checks the inputs, locks `<directory>/<project_name>`, refuses a saved search
    of another configuration (naming the fields), and only then reloads or starts one; `close()`
    releases the lock.

    Args:
      oracle: an `AutoGANOracle`.
      config: `SharedTrainingConfig`.
      directory: the run directory; the search writes to `<directory>/<project_name>`.
      project_name: sub-directory name ('search').
      overwrite: start afresh: the previous search moves to `<project>.replaced-<time>`.
      strategy: optional `tf.distribute.Strategy` for the shared GAN's data-parallel steps.
      classifier: an already-loaded `metrics.Classifier` (else loaded from `config.classifier`).

    Raises:
      RunDirError: another process uses the project directory.
      ConfigError: the saved search was started with other settings, or the GAN settings do
        not fit the strategy's replicas (`gan.check_replicas`).
      SearchError, CheckpointError: the saved state or its checkpoint cannot be read.
    """

    def __init__(self, oracle: AutoGANOracle, config: SharedTrainingConfig = SharedTrainingConfig(),
                 directory: str = "runs", project_name: str = "search", overwrite: bool = False,
                 strategy: Optional[tf.distribute.Strategy] = None, classifier=None):
        if not isinstance(oracle, AutoGANOracle):
            raise TypeError("AutoGANTuner needs an AutoGANOracle")
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        check_replicas(config.gan, self.strategy.num_replicas_in_sync)
        self._state = {"trained_iteration": -1, "stage": 0, "reset_pending": False,
                       "resets": 0, "d_steps": 0, "g_steps": 0, "checkpoint": None,
                       "rewards": []}
        self.reset_detector = DynamicReset(config.reset_window, config.reset_threshold)
        self.classifier = check_inputs(config, classifier)
        project = os.path.join(str(directory), project_name)
        self.guard = finite.NonFiniteGuard(config.on_nonfinite, f"search {project}")
        self._lock = rundir.RunDirLock(project, "search").acquire()
        try:
            if overwrite:
                rundir.move_aside(project)
            else:
                self._check_saved_search(project, oracle)
            super().__init__(oracle, directory=directory, project_name=project_name,
                             overwrite=False)
            self._build_gan()
            if self._state["checkpoint"]:
                self._restore(self._state["checkpoint"])
        except BaseException:
            self._lock.release()
            raise
        self._writer = tf.summary.create_file_writer(os.path.join(self.project_dir, "tb"))

    def _check_saved_search(self, project: str, oracle: AutoGANOracle) -> None:
        """Refuses, before anything is written, a saved search of other settings."""
        tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "tuner0")
        oracle_state = _load_state(os.path.join(project, "oracle.json"))
        tuner_state = _load_state(os.path.join(project, f"{tuner_id}.json"))
        for path in glob.glob(os.path.join(project, "trial_*", "trial.json")):
            _load_state(path)  # readable, or one clear message
        diffs = []
        if oracle_state and "autogan" in oracle_state:
            diffs += rundir.config_differences(oracle_state["autogan"].get("config", {}),
                                               oracle.config.to_dict())
        if tuner_state and "config" in tuner_state:
            names = {d[0] for d in diffs}
            diffs += [d for d in rundir.config_differences(
                tuner_state["config"], self.config.to_dict(), RESUME_IGNORED)
                if d[0] not in names]
        rundir.refuse_resume(diffs, f"the search in {project}", _RESUME_FIX)

    def close(self) -> None:
        """Releases the project directory's lock."""
        self._lock.release()

    def save(self):
        """keras-tuner's save, each JSON file replaced atomically (never left half-written)."""
        if not self._is_worker():
            self.oracle.save()
        rundir.write_json(self._get_tuner_fname(), self.get_state(), indent=None)

    # ----- models -------------------------------------------------------------------------
    def _new_models(self, init_seed: int):
        cfg = self.config
        keras.utils.set_random_seed(init_seed)
        dtype = precision_policy(cfg.mixed_precision)
        with self.strategy.scope():
            g = SharedGenerator(cfg.gan.latent_dim, cfg.gf, cfg.bottom_width, stage=0,
                                dtype=dtype, name="shared_generator")
            d = Discriminator(cfg.df, stage=0, input_resolution=cfg.resolution(2), dtype=dtype,
                              name="discriminator")
        return g, d

    def _build_gan(self):
        cfg = self.config
        g, d = self._new_models(seeds.derive(cfg.seed, "shared_init", 0))
        self.trainer = GANTrainer(g, d, cfg.gan, seed=seeds.derive(cfg.seed, "gan_latents"),
                                  strategy=self.strategy)
        self.trainer.set_stage(self._state["stage"])
        self._checkpoint = tf.train.Checkpoint(**self.trainer.checkpoint_items())
        self._ckpt_dir = os.path.join(self.project_dir, _CKPT_SUBDIR)
        self._make_generate_fn()

    def _make_generate_fn(self):
        g = self.trainer.generator
        self._generate = tf.function(lambda z, arch: g(z, arch, training=False),
                                     autograph=False)

    def _reinitialise(self):
        """Dynamic reset: fresh G and D weights and zeroed optimisers; no retrace."""
        self._state["resets"] += 1
        self._load_fresh_weights(seeds.derive(self.config.seed, "shared_init",
                                              self._state["resets"]))
        self._state["reset_pending"] = False

    def _load_fresh_weights(self, init_seed: int):
        """Newly initialised G and D weights (from `init_seed`), zeroed optimisers."""
        g, d = self._new_models(init_seed)
        for src, dst in ((g, self.trainer.generator), (d, self.trainer.discriminator)):
            for a, b in zip(src.weights, dst.weights):
                b.assign(a)
        for opt in (self.trainer.g_opt, self.trainer.d_opt):
            lr = float(opt.learning_rate.numpy())
            for v in opt.variables:
                v.assign(tf.zeros(v.shape, v.dtype))
            opt.learning_rate.assign(lr)
        self.reset_detector.clear()

    def _grow(self, stage: int):
        if stage != self.trainer.generator.stage:
            self.trainer.set_stage(stage)
            self._make_generate_fn()
        self._state["stage"] = stage

    # ----- checkpoints -----------------------------------------------------------------------
    def _save_gan(self) -> str:
        """Writes the shared GAN's checkpoint; returns its name relative to the project dir.

        Non-finite weights are never written: the NaN/Inf policy first restores the state of
        the start of the iteration (which is then saved), or raises.
        """
        bad = finite.nonfinite_variables(self._gan_variables())
        if bad:
            self._nonfinite(f"non-finite weights ({bad[0]}) after the shared training of "
                            f"iteration {self._state['trained_iteration']}")
        os.makedirs(self._ckpt_dir, exist_ok=True)
        name = f"ckpt-{self._state['trained_iteration']}-{self._state['resets']}"
        self._checkpoint.write(os.path.join(self._ckpt_dir, name))
        self.guard.good_checkpoint()
        keep = {name}
        old = self._state.get("checkpoint")
        if old:
            keep.add(os.path.basename(old))  # the JSON still names it until the tuner saves
        for f in os.listdir(self._ckpt_dir):
            if f.startswith("ckpt-") and f.split(".")[0] not in keep:
                os.remove(os.path.join(self._ckpt_dir, f))
        return f"{_CKPT_SUBDIR}/{name}"

    def _checkpoint_path(self, stored: str) -> str:
        """The prefix of a checkpoint the state names: relative to the project directory, or
        (older states) absolute or relative to the working directory of the first run."""
        tried = []
        for p in (os.path.join(self.project_dir, stored), stored,
                  os.path.join(self._ckpt_dir, os.path.basename(stored))):
            if p not in tried:
                tried.append(p)
            if tf.io.gfile.exists(p + ".index"):
                return p
        raise SearchError(
            f"the search state in {self.project_dir} names the shared-GAN checkpoint "
            f"{stored}, which is missing (looked for {', '.join(tried)}). Restore it from a "
            "backup, or run the search in another --run_dir")

    def _restore(self, stored: str):
        path = self._checkpoint_path(stored)
        try:
            self._checkpoint.read(path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError) as e:
            raise CheckpointError(
                f"cannot restore the shared-GAN checkpoint {path}: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. It is corrupt or "
                "from another configuration; restore it from a backup, or run the search in "
                "another --run_dir") from e

    def _gan_variables(self) -> list:
        t = self.trainer
        return (list(t.generator.weights) + list(t.discriminator.weights)
                + list(t.g_opt.variables) + list(t.d_opt.variables) + [t.rng.state])

    def _snapshot(self) -> None:
        """Keeps the shared GAN's state (the last good one) in memory."""
        self._good_state = [v.numpy() for v in self._gan_variables()]

    def _nonfinite(self, problem: str) -> None:
        """Restores the state of `_snapshot`; then goes on or raises (the NaN/Inf policy)."""
        for v, value in zip(self._gan_variables(), self._good_state):
            v.assign(value)
        self.guard.on_nonfinite(problem, "the shared GAN at the start of this iteration")
        logging.warning("search %s: %s; restored the shared GAN of the start of the iteration "
                        "(restore %d of %d in a row)", self.project_dir, problem,
                        self.guard.restores_in_a_row, finite.MAX_RESTORES)

    def _step_diverged(self, d_loss: float, g_loss: Optional[float], iteration: int,
                       step: int) -> bool:
        """False for finite losses; else applies the NaN/Inf policy (restores: True)."""
        bad = finite.nonfinite_losses({"d_loss": d_loss, "g_loss": g_loss})
        if not bad:
            return False
        values = {"d_loss": d_loss, "g_loss": g_loss}
        self._nonfinite(", ".join(f"{k} {values[k]}" for k in bad)
                        + f" at D step {step + 1} of search iteration {iteration}")
        return True

    def get_state(self):
        state = dict(self._state)
        state["reset_windows"] = self.reset_detector.get_state()
        state["config"] = self.config.to_dict()
        return state

    def set_state(self, state):
        """Restores the JSON state; a saved config that differs in a field of results (older
        states lack the GAN settings: those are not compared) is refused.

        Raises:
          ConfigError: naming each differing field.
        """
        saved = state.pop("config", None)
        if saved is not None:
            rundir.refuse_resume(
                rundir.config_differences(saved, self.config.to_dict(), RESUME_IGNORED),
                f"the search in {self.project_dir}", _RESUME_FIX)
        windows = state.pop("reset_windows", {})
        self._state.update(state)
        self.reset_detector.set_state(windows)
        if not self._is_worker():
            self._state["rewards"] = self._ended_rewards()

    def _ended_rewards(self) -> list:
        """[iteration, kind, reward] of every completed trial, in the order they ended.

        The oracle saves an ended trial before the tuner saves its own state, so after a kill
        in between the tuner's record would lack that trial (which is not run again): the
        record is rebuilt from the oracle's trials on every resume.
        """
        out = []
        for trial_id in self.oracle.end_order:
            t = self.oracle.trials.get(trial_id)
            if t is None or t.status != keras_tuner.engine.trial.TrialStatus.COMPLETED:
                continue
            if t.score is None:
                continue
            hp = t.hyperparameters
            out.append([int(hp.get("iteration")), hp.get("kind"), float(t.score)])
        return out

    # ----- phase 1: shared GAN training ------------------------------------------------------
    @functools.cached_property
    def _steps_per_epoch(self) -> int:
        # Counting a folder or .npz dataset loads it: done once, not every iteration.
        cfg = self.config
        if cfg.steps_per_epoch:
            return cfg.steps_per_epoch
        info = data_lib.DATASETS.get(cfg.dataset)
        n = info.num_images if info else len(data_lib.load_images(cfg.dataset, 8))
        return max(1, n // cfg.gan.d_batch_size)

    def train_shared(self, iteration: int, arch=None) -> dict:
        """Trains the shared GAN for one search iteration; returns a summary.

        Args:
          iteration: the search iteration (seeds its data order and minibatch architectures).
          arch: train this one architecture (14 tokens) on every minibatch instead of sampling
            one per minibatch from the oracle's policy (search without weight sharing).
        """
        cfg, gan = self.config, self.config.gan
        stage = self._state["stage"]
        res = cfg.resolution(stage)
        steps = self.steps_per_iteration
        ds = data_lib.make_dataset(cfg.dataset, res, gan.d_batch_size,
                                   seed=seeds.derive(cfg.seed, "data_order", iteration),
                                   data_dir=cfg.data_dir)
        if arch is None:
            arch_rng = seeds.numpy_rng(cfg.seed, "minibatch_archs", iteration)
            archs = self.oracle.sample_architectures(steps, seed=arch_rng)
        else:
            archs = np.repeat(np.asarray(arch, np.int32)[None], steps, axis=0)
        detect = cfg.dynamic_reset and self.oracle.config.weight_sharing
        self._say(f"iteration {iteration} (stage {stage}, {res} px): shared GAN training, "
                  f"up to {steps} D steps" if arch is None else
                  f"iteration {iteration} (stage {stage}, {res} px): training "
                  f"{' '.join(map(str, arch))} from scratch, {steps} D steps")
        bar = keras.utils.Progbar(steps, stateful_metrics=["d_loss", "g_loss"],
                                  verbose=1 if cfg.progress else 0)
        fired, d_loss, g_loss, t0, done = False, float("nan"), float("nan"), time.time(), 0
        self._snapshot()
        with self._writer.as_default():
            for step, real in enumerate(ds.take(steps)):
                a = archs[step]
                d_loss = float(self.trainer.d_step(real, a))
                self._state["d_steps"] += 1
                g = None
                if (step + 1) % gan.n_critic == 0:
                    g_loss = g = float(self.trainer.g_step(a))
                    self._state["g_steps"] += 1
                if self._step_diverged(d_loss, g, iteration, step):
                    continue
                done = step + 1
                if detect and self.reset_detector.update(d_loss, g):
                    fired = True
                if self._state["d_steps"] % cfg.log_every == 0:
                    tf.summary.scalar("shared/d_loss", d_loss, step=self._state["d_steps"])
                    tf.summary.scalar("shared/g_loss", g_loss, step=self._state["d_steps"])
                bar.update(done, [("d_loss", d_loss), ("g_loss", g_loss)], finalize=fired or None)
                if fired:
                    break
            tf.summary.scalar("search/stage", stage, step=iteration)
            tf.summary.scalar("search/dynamic_reset", int(fired), step=iteration)
            self._log_grid(f"samples/stage{stage}", archs[0], iteration,
                           f"iter{iteration:03d}_stage{stage}.png")
        seconds = time.time() - t0
        self._say(f"  {done} D steps in {seconds:.1f} s, d_loss {d_loss:.3f}"
                  + ("" if np.isnan(g_loss) else f", g_loss {g_loss:.3f}")
                  + (f"; dynamic reset: loss variance fell below {cfg.reset_threshold}, G and D "
                     "are re-initialised after this iteration's trials" if fired else ""))
        self._state["reset_pending"] = fired
        return {"d_steps": done, "d_loss": d_loss, "g_loss": g_loss, "reset": fired,
                "seconds": seconds}

    @property
    def steps_per_iteration(self) -> int:
        """The D-step budget of one search iteration (epochs, capped by max_steps)."""
        cfg = self.config
        steps = cfg.max_epochs_per_iteration * self._steps_per_epoch
        if cfg.max_steps_per_iteration:
            steps = min(steps, cfg.max_steps_per_iteration)
        return steps

    # ----- phase 2: rewards ------------------------------------------------------------------
    def child_sampler(self, arch, seed: int):
        """`sample_fn(n)` of the child `arch` (14 tokens) through the shared weights."""
        arch = tf.constant(np.asarray(arch, np.int32))
        return LatentSampler(lambda z: self._generate(z, arch), self.config.gan.latent_dim,
                             seed, self.config.reward_batch_size)

    def sample_images(self, arch, num_images: int, seed: int, batch_size: int = 100):
        """Float images in [-1, 1] of the child `arch` (14 tokens) through the shared weights."""
        return draw_images(self.child_sampler(arch, seed), num_images, batch_size)

    def real_statistics(self, resolution: int):
        """Real-image statistics at `resolution` for the FID reward (computed once, cached)."""
        cache = self.__dict__.setdefault("_real_stats", {})
        if resolution not in cache:
            cfg = self.config
            cache[resolution] = metrics.real_statistics(
                cfg.dataset, resolution, self.classifier, cache_dir=cfg.cache_dir,
                data_dir=cfg.data_dir)
        return cache[resolution]

    def score(self, arch, seed: int) -> dict:
        """The reward of a child architecture (shared weights, evaluation mode).

        Returns:
          {'reward': float, 'inception_score': float, 'fid': float or None}.
        """
        cfg = self.config
        stats = None
        if cfg.reward == "fid":
            stats = self.real_statistics(cfg.resolution(self._state["stage"]))
        scores = metrics.score_generator(self.child_sampler(arch, seed), cfg.reward_images,
                                         self.classifier, real_stats=stats,
                                         splits=cfg.reward_splits,
                                         batch_size=cfg.reward_batch_size)
        is_mean = float(scores["is_mean"])
        if cfg.reward == "fid":
            fid = float(scores["fid"])
            return {"reward": fid_reward(fid), "inception_score": is_mean, "fid": fid}
        return {"reward": is_mean, "inception_score": is_mean, "fid": None}

    def reward(self, arch, seed: int) -> float:
        """The reward of a child architecture (see `score`)."""
        return self.score(arch, seed)["reward"]

    def evaluate_policy(self, search_stage: int) -> dict:
        """Expected reward of the current policy and of the uniform policy, measured alike.

        Both sets come from `AutoGANOracle.policy_eval_architectures` (paired prefixes) and
        every architecture is scored on the current shared weights with the same latents.
        """
        policy, uniform = self.oracle.policy_eval_architectures()
        seed = seeds.derive(self.config.seed, "policy_eval", search_stage)
        t0 = time.time()
        r_policy = [self.reward(a, seed) for a in policy]
        r_uniform = [self.reward(a, seed) for a in uniform]
        out = {"expected_reward_policy": float(np.mean(r_policy)),
               "expected_reward_uniform": float(np.mean(r_uniform)),
               "stderr_policy": float(np.std(r_policy, ddof=1) / np.sqrt(len(r_policy)))
               if len(r_policy) > 1 else None,
               "stderr_uniform": float(np.std(r_uniform, ddof=1) / np.sqrt(len(r_uniform)))
               if len(r_uniform) > 1 else None,
               "rewards_policy": [round(r, 5) for r in r_policy],
               "rewards_uniform": [round(r, 5) for r in r_uniform],
               "archs_policy": policy.tolist(), "archs_uniform": uniform.tolist()}
        self._say(f"stage {self._state['stage']} policy check ({len(r_policy)} architectures "
                  f"each, same weights and latents, {time.time() - t0:.0f} s): expected reward "
                  f"{out['expected_reward_policy']:.3f} (policy) vs "
                  f"{out['expected_reward_uniform']:.3f} (uniform)")
        return out

    def _log_grid(self, tag, arch, step, filename):
        images = self.sample_images(arch, 64, seed=seeds.derive(self.config.seed, "grid_latents"))
        log_image_grid(tag, images, step, os.path.join(self.project_dir, "samples", filename))

    # ----- reporting ---------------------------------------------------------------------------
    report: Optional[Callable[[str], None]] = None
    """Where progress lines go (the binary passes `print`); absl logging when None."""

    def _say(self, message: str) -> None:
        (self.report or logging.info)(message)

    # ----- keras-tuner hooks -------------------------------------------------------------------
    def run_trial(self, trial, *args, **kwargs):
        try:
            return self._run_trial(trial)
        except (AutoGANError, OSError) as e:  # search_lib reports the cause in one line
            raise keras_tuner.errors.FatalError(str(e)) from e
        except tf.errors.ResourceExhaustedError as e:
            raise keras_tuner.errors.FatalError(f"out of memory: {e.message}") from e
        except keras_tuner.errors.FatalError:
            raise
        except Exception as e:  # a failing child is a bug: stop, resume re-runs the trial
            raise keras_tuner.errors.FatalError(
                f"trial {trial.trial_id} failed: {type(e).__name__}: {e}") from e

    def _run_trial(self, trial):
        hp = trial.hyperparameters
        stage, iteration = int(hp.get("stage")), int(hp.get("iteration"))
        kind, step = hp.get("kind"), int(hp.get("step"))
        arch = trial_architecture(hp)
        sharing = self.oracle.config.weight_sharing
        self._grow(stage)
        if kind == CONTROLLER and iteration > self._state["trained_iteration"]:
            if not sharing:  # random search without sharing: this child alone, from scratch
                self._load_fresh_weights(seeds.derive(self.config.seed, "scratch_init",
                                                      iteration))
                self.train_shared(iteration, arch=arch.padded())
            else:
                if self._state["reset_pending"]:
                    self._reinitialise()
                self.train_shared(iteration)
            self._state["trained_iteration"] = iteration
            self._state["checkpoint"] = self._save_gan()
            self.save()
        if kind == BEAM and step == 0 and self.oracle.config.policy_eval_archs:
            evals = self._state.setdefault("policy_eval", {})
            key = str(self.oracle.current_search_stage)
            if key not in evals:  # once per stage, also when this trial is re-run
                evals[key] = self.evaluate_policy(self.oracle.current_search_stage)
                self.save()
        seed = seeds.derive(self.config.seed, "reward_latents", iteration, step, kind == BEAM)
        scores = self.score(arch.padded(), seed)
        self._state["rewards"].append([iteration, kind, scores["reward"]])
        out = {REWARDS[self.config.reward]: scores["reward"]}
        if self.config.reward != "is":
            out.update(inception_score=scores["inception_score"], fid=scores["fid"])
        return out

    def on_search_begin(self):
        super().on_search_begin()
        self._clock = time.time()

    def _tick(self) -> None:
        """Adds the wall time since the last tick to the search's total (kept across resumes)."""
        now = time.time()
        self._state["seconds"] = self._state.get("seconds", 0.0) + now - getattr(
            self, "_clock", now)
        self._clock = now

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle learns from the reward here
        self._tick()
        hp = trial.hyperparameters
        oracle = self.oracle
        n_done = len(oracle.end_order)
        score = trial.score
        kind, stage = hp.get("kind"), int(hp.get("stage"))
        best = self._state.setdefault("best_by_stage", {})
        key = str(oracle.config.stage_of_iteration(int(hp.get("iteration"))))
        if score is not None and (best.get(key) is None or score > best[key]):
            best[key] = float(score)
        per_iter = oracle.config.trials_per_iteration
        total = per_iter if kind == CONTROLLER else oracle.config.num_candidates
        name = "IS" if self.config.reward == "is" else "-ln FID"
        shown = "failed" if score is None else f"{score:.3f}"
        self._say(f"[{n_done}/{oracle.max_trials}] stage {stage} it {hp.get('iteration')} "
                  f"{kind} {int(hp.get('step')) + 1}/{total}: {hp.get('arch')}  "
                  f"{name} {shown}  (stage best {best.get(key, float('nan')):.3f})")
        with self._writer.as_default():
            t = n_done
            if score is not None:
                tf.summary.scalar(f"reward/{kind}", score, step=t)
            m = getattr(oracle, "last_update_metrics", None)
            if m and kind == CONTROLLER and str(m.get("trial_id")) == str(trial.trial_id):
                for k in ("loss", "baseline", "advantage", "entropy"):
                    if k in m:
                        tf.summary.scalar(f"controller/{k}", float(m[k]), step=t)
            tf.summary.scalar("search/resets", self._state["resets"], step=t)
        self._writer.flush()
        if oracle.completed_stages > len(self._state.setdefault("stages_reported", [])):
            self._state["stages_reported"].append(oracle.completed_stages - 1)
            self._end_of_stage(oracle.completed_stages - 1)

    def _end_of_stage(self, search_stage: int) -> None:
        """Logs the stage's policy figures to TensorBoard and rewrites the summary."""
        summary = self.write_summary()
        rec = summary["policy"][search_stage]
        with self._writer.as_default():
            for k in ("entropy_start", "entropy_end", "kl_uniform_start", "kl_uniform_end",
                      "expected_reward_policy", "expected_reward_uniform"):
                if rec.get(k) is not None:
                    tf.summary.scalar(f"policy/{k}", rec[k], step=rec["stage"])
        self._writer.flush()
        self._say(summary_lib.format_stage(rec))

    def on_search_end(self):
        super().on_search_end()
        self._tick()
        self.write_top_architectures()
        self.write_summary()

    def summary(self) -> dict:
        """The search's summary so far (the contents of summary.json)."""
        return summary_lib.build_summary(self.oracle, self._state, self.config)

    def write_summary(self) -> dict:
        """Writes `<project>/summary.json` and the plots; returns the summary."""
        summary = self.summary()
        summary_lib.write_summary(self.project_dir, summary)
        return summary

    def write_top_architectures(self) -> str:
        """Writes `<project>/top_architectures.json` (best first, ready for `train`)."""
        top = self.oracle.top_architectures()
        entries = []
        for m in top:
            a = ss.Architecture.parse(m["arch"], allow_partial=True)
            entries.append(a.to_dict(reward=m["reward"]))
        path = os.path.join(self.project_dir, "top_architectures.json")
        with open(path + ".tmp", "w") as f:
            json.dump({"architectures": entries,
                       "beams": [self.oracle.top_architectures(s)
                                 for s in range(self.oracle.completed_stages)]}, f, indent=2)
        os.replace(path + ".tmp", path)
        if entries and self.oracle.config.weight_sharing:  # else the weights are another's
            with self._writer.as_default():
                best = ss.Architecture.parse(entries[0]["arch"], allow_partial=True)
                self._log_grid("samples/best", best.padded(), 0, "best.png")
        return path
