"""The AutoGAN Tuner: trains the shared GAN and scores child architectures (Algorithm 1).

`AutoGANTuner` is the execution half of the search; `AutoGANOracle` is the algorithm half.
For the first controller trial of every search iteration the tuner trains the shared GAN (a new
architecture from the controller for every minibatch, n_critic D steps per G step, the
discriminator and the data resolution growing with the stage) until the epoch budget is spent
or the dynamic-reset detector fires. Every trial is then scored by the Inception Score of its
child architecture through the shared weights in evaluation mode. A pending dynamic reset
re-initialises G, D and both optimisers before the next iteration's training; the controller
and the beam are kept.

State survives a kill: the tuner's JSON (keras-tuner `get_state`) names the last shared-GAN
checkpoint, written before the JSON; a trial killed in flight is re-run by keras-tuner and, being
seeded by its iteration and step, gives the same result.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import time
from typing import Optional

import keras
import keras_tuner
import numpy as np
import tensorflow as tf

from autogan_tf import data as data_lib
from autogan_tf.eval import metrics
from autogan_tf import search_space as ss
from autogan_tf.nn.discriminator import Discriminator
from autogan_tf import seeds
from autogan_tf.images import log_image_grid
from autogan_tf.sampling import LatentSampler, draw_images
from autogan_tf.training.gan import GANConfig, GANTrainer, precision_policy
from autogan_tf.nn.generators import SharedGenerator
from autogan_tf.search.oracle import BEAM, CONTROLLER, AutoGANOracle, trial_architecture

__all__ = ["SharedTrainingConfig", "DynamicReset", "AutoGANTuner"]


@dataclasses.dataclass(frozen=True)
class SharedTrainingConfig:
    """How the tuner trains the shared GAN and computes rewards.

    Defaults are the reference CIFAR-10 search (SPEC sections 3-4).

    Attributes:
      dataset: a name for `data.make_dataset` (cifar10, stl10, digits, a folder or an .npz).
      data_dir: TFDS data directory.
      bottom_width: generator bottom width; the final resolution is bottom_width * 8.
      gf, df: generator and discriminator channels (128 and 64 in search).
      gan: batch sizes, n_critic and Adam settings of the shared GAN.
      max_epochs_per_iteration: shared training per search iteration, in epochs (15).
      max_steps_per_iteration: a cap on D steps per iteration (0: none).
      steps_per_epoch: D steps per epoch (0: dataset size // D batch).
      reward_images, reward_splits: Inception Score of a child (5,000 images, 10 splits).
      classifier: 'inception', 'digits' or a local SavedModel path.
      cache_dir: where the digits classifier and statistics are cached.
      dynamic_reset, reset_window, reset_threshold: the dynamic-reset rule.
      mixed_precision: build the shared GAN with `mixed_bfloat16`.
      seed: seeds initialisation, data order, latents and minibatch architectures.
      log_every: D steps between TensorBoard loss scalars.
      progress: show progress bars.
    """

    dataset: str = "cifar10"
    data_dir: Optional[str] = None
    bottom_width: int = 4
    gf: int = 128
    df: int = 64
    gan: GANConfig = GANConfig()
    max_epochs_per_iteration: int = 15
    max_steps_per_iteration: int = 0
    steps_per_epoch: int = 0
    reward_images: int = 5000
    reward_splits: int = 10
    reward_batch_size: int = 100
    classifier: str = "inception"
    cache_dir: Optional[str] = None
    dynamic_reset: bool = True
    reset_window: int = 500
    reset_threshold: float = 1e-3
    mixed_precision: bool = False
    seed: int = 0
    log_every: int = 50
    progress: bool = True

    def __post_init__(self):
        positive = ("bottom_width", "gf", "df", "max_epochs_per_iteration", "reward_images",
                    "reward_splits", "reward_batch_size", "reset_window", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps_per_iteration", "steps_per_epoch", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.reward_images < self.reward_splits:
            raise ValueError(f"reward_images ({self.reward_images}) must be >= reward_splits "
                             f"({self.reward_splits})")

    def resolution(self, stage: int) -> int:
        return self.bottom_width * 2 ** (stage + 1)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return d


class DynamicReset:
    """Windows of the last G and D losses; fires when the variance of either falls below the
    threshold over a full window (paper section 3.3.1)."""

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
        for w in (self.g_losses, self.d_losses):
            if len(w) == self.window and float(np.var(np.asarray(w))) < self.threshold:
                return True
        return False

    def clear(self) -> None:
        self.g_losses.clear()
        self.d_losses.clear()

    def get_state(self) -> dict:
        return {"g_losses": list(self.g_losses), "d_losses": list(self.d_losses)}

    def set_state(self, state: dict) -> None:
        self.clear()
        self.g_losses.extend(state.get("g_losses", []))
        self.d_losses.extend(state.get("d_losses", []))


class AutoGANTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Trains the weight-shared GAN and scores the oracle's child architectures.

    Args:
      oracle: an `AutoGANOracle`.
      config: `SharedTrainingConfig`.
      directory: the run directory; the search writes to `<directory>/<project_name>`.
      project_name: sub-directory name ('search').
      overwrite: start afresh instead of resuming what the directory holds.
      strategy: optional `tf.distribute.Strategy` for the shared GAN's data-parallel steps.
    """

    def __init__(self, oracle: AutoGANOracle, config: SharedTrainingConfig = SharedTrainingConfig(),
                 directory: str = "runs", project_name: str = "search", overwrite: bool = False,
                 strategy: Optional[tf.distribute.Strategy] = None):
        if not isinstance(oracle, AutoGANOracle):
            raise TypeError("AutoGANTuner needs an AutoGANOracle")
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self._state = {"trained_iteration": -1, "stage": 0, "reset_pending": False,
                       "resets": 0, "d_steps": 0, "g_steps": 0, "checkpoint": None,
                       "rewards": []}
        self.reset_detector = DynamicReset(config.reset_window, config.reset_threshold)
        super().__init__(oracle, directory=directory, project_name=project_name,
                         overwrite=overwrite)
        self.classifier = metrics.load_classifier(config.classifier, config.cache_dir)
        self._build_gan()
        self._writer = tf.summary.create_file_writer(os.path.join(self.project_dir, "tb"))
        if self._state["checkpoint"]:
            self._restore(self._state["checkpoint"])

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
        self._ckpt_dir = os.path.join(self.project_dir, "shared_gan")
        self._make_generate_fn()

    def _make_generate_fn(self):
        g = self.trainer.generator
        self._generate = tf.function(lambda z, arch: g(z, arch, training=False),
                                     autograph=False)

    def _reinitialise(self):
        """Dynamic reset: fresh G and D weights and zeroed optimisers; no retrace."""
        self._state["resets"] += 1
        g, d = self._new_models(seeds.derive(self.config.seed, "shared_init",
                                               self._state["resets"]))
        for src, dst in ((g, self.trainer.generator), (d, self.trainer.discriminator)):
            for a, b in zip(src.weights, dst.weights):
                b.assign(a)
        for opt in (self.trainer.g_opt, self.trainer.d_opt):
            lr = float(opt.learning_rate)
            for v in opt.variables:
                v.assign(tf.zeros(v.shape, v.dtype))
            opt.learning_rate.assign(lr)
        self.reset_detector.clear()
        self._state["reset_pending"] = False

    def _grow(self, stage: int):
        if stage != self.trainer.generator.stage:
            self.trainer.set_stage(stage)
            self._make_generate_fn()
        self._state["stage"] = stage

    # ----- checkpoints -----------------------------------------------------------------------
    def _save_gan(self) -> str:
        os.makedirs(self._ckpt_dir, exist_ok=True)
        path = self._checkpoint.write(os.path.join(
            self._ckpt_dir, f"ckpt-{self._state['trained_iteration']}-{self._state['resets']}"))
        keep = {path}
        old = self._state.get("checkpoint")
        if old:
            keep.add(old)  # the JSON still names it until the tuner saves
        for f in os.listdir(self._ckpt_dir):
            prefix = os.path.join(self._ckpt_dir, f.split(".")[0])
            if prefix not in keep and f.startswith("ckpt-"):
                os.remove(os.path.join(self._ckpt_dir, f))
        return path

    def _restore(self, path: str):
        if not tf.io.gfile.exists(path + ".index"):
            raise FileNotFoundError(
                f"the search state names the shared-GAN checkpoint {path}, which is missing; "
                "restart with --overwrite to begin a new search in this directory")
        self._checkpoint.read(path).assert_existing_objects_matched()

    def get_state(self):
        state = dict(self._state)
        state["reset_windows"] = self.reset_detector.get_state()
        state["config"] = {k: v for k, v in self.config.to_dict().items() if k != "gan"}
        return state

    def set_state(self, state):
        windows = state.pop("reset_windows", {})
        state.pop("config", None)
        self._state.update(state)
        self.reset_detector.set_state(windows)

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

    def train_shared(self, iteration: int) -> dict:
        """Trains the shared GAN for one search iteration; returns a summary."""
        cfg, gan = self.config, self.config.gan
        stage = self._state["stage"]
        res = cfg.resolution(stage)
        steps = cfg.max_epochs_per_iteration * self._steps_per_epoch
        if cfg.max_steps_per_iteration:
            steps = min(steps, cfg.max_steps_per_iteration)
        ds = data_lib.make_dataset(cfg.dataset, res, gan.d_batch_size,
                                   seed=seeds.derive(cfg.seed, "data_order", iteration),
                                   data_dir=cfg.data_dir)
        arch_rng = seeds.numpy_rng(cfg.seed, "minibatch_archs", iteration)
        archs = self.oracle.sample_architectures(steps, seed=arch_rng)
        bar = keras.utils.Progbar(steps, stateful_metrics=["d_loss", "g_loss"],
                                  verbose=1 if cfg.progress else 0)
        print(f"Search iteration {iteration} (stage {stage}, {res} px): training the shared "
              f"GAN for up to {steps} D steps", flush=True)
        fired, d_loss, g_loss, t0, done = False, float("nan"), float("nan"), time.time(), 0
        with self._writer.as_default():
            for step, real in enumerate(ds.take(steps)):
                arch = archs[step]
                d_loss = float(self.trainer.d_step(real, arch))
                self._state["d_steps"] += 1
                g = None
                if (step + 1) % gan.n_critic == 0:
                    g_loss = g = float(self.trainer.g_step(arch))
                    self._state["g_steps"] += 1
                done = step + 1
                if cfg.dynamic_reset and self.reset_detector.update(d_loss, g):
                    fired = True
                if self._state["d_steps"] % cfg.log_every == 0:
                    tf.summary.scalar("shared/d_loss", d_loss, step=self._state["d_steps"])
                    tf.summary.scalar("shared/g_loss", g_loss, step=self._state["d_steps"])
                bar.update(done, [("d_loss", d_loss), ("g_loss", g_loss)])
                if fired:
                    break
            tf.summary.scalar("search/stage", stage, step=iteration)
            tf.summary.scalar("search/dynamic_reset", int(fired), step=iteration)
            self._log_grid(f"samples/stage{stage}", archs[0], iteration,
                           f"iter{iteration:03d}_stage{stage}.png")
        if fired:
            print(f"Dynamic reset: loss variance fell below {cfg.reset_threshold} after "
                  f"{done} D steps; G and D are re-initialised after the controller steps",
                  flush=True)
        self._state["reset_pending"] = fired
        return {"d_steps": done, "d_loss": d_loss, "g_loss": g_loss, "reset": fired,
                "seconds": time.time() - t0}

    # ----- phase 2: rewards ------------------------------------------------------------------
    def child_sampler(self, arch, seed: int):
        """`sample_fn(n)` of the child `arch` (14 tokens) through the shared weights."""
        arch = tf.constant(np.asarray(arch, np.int32))
        return LatentSampler(lambda z: self._generate(z, arch), self.config.gan.latent_dim,
                             seed, self.config.reward_batch_size)

    def sample_images(self, arch, num_images: int, seed: int, batch_size: int = 100):
        """Float images in [-1, 1] of the child `arch` (14 tokens) through the shared weights."""
        return draw_images(self.child_sampler(arch, seed), num_images, batch_size)

    def reward(self, arch, seed: int) -> float:
        """Inception Score of a child architecture (shared weights, evaluation mode)."""
        cfg = self.config
        sample_fn = self.child_sampler(arch, seed)
        scores = metrics.score_generator(sample_fn, cfg.reward_images, self.classifier,
                                         splits=cfg.reward_splits,
                                         batch_size=cfg.reward_batch_size)
        return float(scores["is_mean"])

    def _log_grid(self, tag, arch, step, filename):
        images = self.sample_images(arch, 64, seed=seeds.derive(self.config.seed, "grid_latents"))
        log_image_grid(tag, images, step, os.path.join(self.project_dir, "samples", filename))

    # ----- keras-tuner hooks -------------------------------------------------------------------
    def run_trial(self, trial, *args, **kwargs):
        try:
            return self._run_trial(trial)
        except (data_lib.DatasetError, metrics.ClassifierError, FileNotFoundError) as e:
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
        self._grow(stage)
        if kind == CONTROLLER and iteration > self._state["trained_iteration"]:
            if self._state["reset_pending"]:
                self._reinitialise()
            summary = self.train_shared(iteration)
            self._state["trained_iteration"] = iteration
            self._state["checkpoint"] = self._save_gan()
            self.save()
            g_loss = summary["g_loss"]
            print(f"  shared training: {summary['d_steps']} D steps in "
                  f"{summary['seconds']:.1f} s, d_loss {summary['d_loss']:.3f}"
                  + ("" if np.isnan(g_loss) else f", g_loss {g_loss:.3f}"), flush=True)
        seed = seeds.derive(self.config.seed, "reward_latents", iteration, step, kind == BEAM)
        r = self.reward(arch.padded(), seed)
        self._state["rewards"].append([iteration, kind, r])
        return {"inception_score": r}

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle learns from the reward here
        hp = trial.hyperparameters
        n_done = len([t for t in self.oracle.trials.values()
                      if t.status == keras_tuner.engine.trial.TrialStatus.COMPLETED])
        score = trial.score
        print(f"[trial {n_done}/{self.oracle.max_trials}] stage {hp.get('stage')} iteration "
              f"{hp.get('iteration')} {hp.get('kind')} {hp.get('step')}: arch {hp.get('arch')} "
              f"IS {score if score is None else round(score, 3)}", flush=True)
        with self._writer.as_default():
            t = n_done
            if score is not None:
                tf.summary.scalar(f"reward/{hp.get('kind')}", score, step=t)
            m = getattr(self.oracle, "last_update_metrics", None)
            if m and hp.get("kind") == CONTROLLER and str(m.get("trial_id")) == str(trial.trial_id):
                for k in ("loss", "baseline", "advantage", "entropy"):
                    if k in m:
                        tf.summary.scalar(f"controller/{k}", float(m[k]), step=t)
            tf.summary.scalar("search/resets", self._state["resets"], step=t)
        self._writer.flush()

    def on_search_end(self):
        super().on_search_end()
        self.write_top_architectures()

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
        if entries:
            with self._writer.as_default():
                best = ss.Architecture.parse(entries[0]["arch"], allow_partial=True)
                self._log_grid("samples/best", best.padded(), 0, "best.png")
        return path
