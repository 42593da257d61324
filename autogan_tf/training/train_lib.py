"""Trains a derived architecture from scratch, with periodic IS/FID and resumable checkpoints.

Layout of a training run directory::

    .lock              held while a process trains in it (pid, host, start time)
    config.json        the resolved TrainConfig (architecture included)
    flags.txt          the binary's flags at the start (flags.resumed-<time>.txt: of a resume)
    ckpt/              the latest checkpoints (G, D, EMA G, both optimisers, RNG, iteration)
    best/              the EMA generator of the best FID so far (what `export` takes)
    tb/                TensorBoard: losses, learning rates, IS, FID, sample grids
    samples/           PNG grids of the EMA generator at each evaluation
    metrics.jsonl      one line per evaluation
    report.json        the final summary

Nothing is written before every check has passed: the dataset (a sample of files decoded), the
classifier (run once), precomputed statistics (their feature size), the run directory (free, and
holding either nothing or a run of the same configuration: `check_resume` compares every field
that changes results, see `RESUME_IGNORED`) and its checkpoints. A run killed at any moment and
started again with the same command continues from its last intact checkpoint (older ones are
tried when the newest cannot be read) with the same iteration count, EMA weights and optimiser
state. Losses are checked every iteration and weights before every checkpoint and `best/`
(`finite`); no non-finite model is ever saved.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from autogan_tf import data as data_lib
from autogan_tf import rundir
from autogan_tf import search_space as ss
from autogan_tf import seeds
from autogan_tf.errors import (CheckpointError, ConfigError, NonFiniteError, RunDirError,
                               TrainError)
from autogan_tf.eval import metrics
from autogan_tf.images import log_image_grid
from autogan_tf.nn.discriminator import Discriminator
from autogan_tf.nn.generators import DerivedGenerator
from autogan_tf.sampling import LatentSampler, draw_images
from autogan_tf.training import distribute, finite
from autogan_tf.training.finite import ON_NONFINITE
from autogan_tf.training.gan import (GANConfig, GANTrainer, check_replicas,
                                     precision_policy)

__all__ = ["TrainConfig", "TrainError", "CheckpointError", "Trainer", "train",
           "load_generator_from_checkpoint", "build_generator", "check_inputs",
           "RESUME_IGNORED", "ON_NONFINITE"]

_CONFIG = "config.json"
_CKPT_DIR = "ckpt"
# Entries a directory may hold and still be a new training run directory.
_NEW_RUN_ENTRIES = {rundir.LOCK_FILE, "flags.txt"}

RESUME_IGNORED = frozenset({
    # how far and how often: a resumed run may train longer, evaluate or save at other times
    "max_iterations", "eval_every", "checkpoint_every",
    # where things are and what is shown, not what is computed
    "data_dir", "cache_dir", "log_every", "progress", "on_nonfinite",
    # how the same computation runs (XLA fuses differently, not differently)
    "gan.jit_compile",
})
"""TrainConfig fields a resume may change; every other field must equal the saved one.

`max_iterations` is compared too when `lr_decay` is on (it sets the decay schedule)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training of one derived architecture (defaults: SPEC section 5, autogan_cifar10_a).

    Attributes:
      arch: the 14 tokens.
      dataset, data_dir: as `data.make_dataset`.
      bottom_width, gf, df: 4, 256, 128 for CIFAR-10 (bottom width 6 for STL-10 at 48 px).
      gan: batches, n_critic, Adam and EMA (0.999) settings.
      max_iterations: generator iterations (50,000).
      lr_decay: linear decay of both learning rates to 0 at max_iterations.
      eval_every: generator iterations between evaluations (and at the end).
      eval_images: images per evaluation (IS and FID).
      eval_splits, eval_batch_size: IS splits, and generator batch of an evaluation.
      real_num_images: real images for the FID statistics (None: the whole dataset).
      classifier, cache_dir, real_stats: the IS/FID network and where statistics live.
      checkpoint_every: generator iterations between checkpoints.
      mixed_precision: build the models with mixed_bfloat16.
      seed: seeds initialisation, latents and data order.
      log_every: generator iterations between TensorBoard loss scalars.
      progress: show a progress bar.
      on_nonfinite: 'restore' the last good checkpoint when losses or weights turn non-finite
        (stop after `finite.MAX_RESTORES` in a row), or 'stop' at once.
    """

    arch: tuple = ss.REFERENCE_ARCHS["autogan_cifar10_a"]
    dataset: str = "cifar10"
    data_dir: Optional[str] = None
    bottom_width: int = 4
    gf: int = 256
    df: int = 128
    gan: GANConfig = GANConfig(ema_decay=0.999)
    max_iterations: int = 50_000
    lr_decay: bool = False
    eval_every: int = 5_000
    eval_images: int = 50_000
    eval_splits: int = 10
    eval_batch_size: int = 100
    real_num_images: Optional[int] = None
    classifier: str = "inception"
    cache_dir: Optional[str] = None
    real_stats: Optional[str] = None
    checkpoint_every: int = 500
    mixed_precision: bool = False
    seed: int = 0
    log_every: int = 50
    progress: bool = True
    on_nonfinite: str = "restore"

    def __post_init__(self):
        object.__setattr__(self, "arch", ss.Architecture.parse(self.arch).tokens)
        for name in ("bottom_width", "gf", "df", "max_iterations", "eval_every", "eval_images",
                     "eval_splits", "eval_batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.gan.ema_decay is None:
            raise ConfigError("training keeps an EMA generator: set gan.ema_decay (0.999)")
        if self.eval_images < self.eval_splits:
            raise ConfigError(f"eval_images ({self.eval_images}) must be >= eval_splits "
                              f"({self.eval_splits})")
        finite.check_policy(self.on_nonfinite)

    @property
    def resolution(self) -> int:
        return self.bottom_width * 2 ** ss.NUM_CELLS

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["arch"] = list(self.arch)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config of a config.json; fields it lacks (older versions) take their defaults."""
        d = dict(d)
        d["gan"] = GANConfig(**d["gan"])
        d["arch"] = tuple(d["arch"])
        return cls(**d)

    def resume_ignored(self) -> frozenset:
        """The fields a resume of this config may change (see `RESUME_IGNORED`)."""
        return RESUME_IGNORED - {"max_iterations"} if self.lr_decay else RESUME_IGNORED


def build_generator(cfg: TrainConfig, name: str = "generator") -> DerivedGenerator:
    return DerivedGenerator(cfg.arch, latent_dim=cfg.gan.latent_dim, channels=cfg.gf,
                            bottom_width=cfg.bottom_width,
                            dtype=precision_policy(cfg.mixed_precision), name=name)


def _first_line(error: Exception, limit: int = 240) -> str:
    """The start of an error's message (TF's can list every unmatched variable's values)."""
    text = (str(error).splitlines() or [type(error).__name__])[0]
    return text if len(text) <= limit else text[:limit] + "..."


def _read_config(run_dir: str) -> Optional[dict]:
    return rundir.read_json(os.path.join(run_dir, _CONFIG), CheckpointError)


def check_inputs(cfg: TrainConfig, classifier=None):
    """Checks the dataset, the classifier and precomputed statistics before anything is written.

    Returns:
      (classifier, real statistics or None): the loaded classifier, and the statistics of
      `cfg.real_stats` if set (otherwise they are computed, or read from the cache, at the
      first evaluation).

    Raises:
      DatasetError, ClassifierError, StatsError: naming the problem and the fix.
    """
    data_lib.check_dataset(cfg.dataset, cfg.resolution, cfg.data_dir)
    classifier, _, feature_dim = metrics.check_classifier(
        classifier if classifier is not None else cfg.classifier, cfg.resolution, cfg.cache_dir)
    stats = None
    if cfg.real_stats:
        stats = metrics.load_statistics(cfg.real_stats, classifier.classifier_id)
        metrics.check_statistics(stats, feature_dim, where=cfg.real_stats)
    return classifier, stats


def _checkpoint_number(prefix: str) -> int:
    m = re.search(r"-(\d+)$", prefix)
    return int(m.group(1)) if m else -1


class Trainer:
    """Owns the models, the GAN steps, checkpoints, evaluation and logging of one run.

    Construction checks everything (see the module docstring), locks `run_dir`, and only then
    writes `config.json` and `flags.txt`. `close()` (or leaving a `with` block) releases the
    lock.

    Args:
      cfg: `TrainConfig`.
      run_dir: the run directory (created; resumed if it holds a run of the same configuration).
      strategy: optional `tf.distribute.Strategy` for data-parallel steps.
      classifier: an already-loaded `metrics.Classifier` (else loaded from `cfg.classifier`).
      overwrite: start afresh: move an earlier run in `run_dir` to `<run_dir>.replaced-<time>`.
      flags_text: the binary's flags, recorded in the run directory.

    Raises:
      RunDirError: `run_dir` is used by another process, or holds something else.
      ConfigError: `run_dir` holds a run whose configuration differs (naming the fields), or
        the GAN settings do not fit the strategy's replicas (`gan.check_replicas`).
      CheckpointError: no checkpoint of the run can be restored.
      DatasetError, ClassifierError, StatsError: from `check_inputs`.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str,
                 strategy: Optional[tf.distribute.Strategy] = None, classifier=None,
                 overwrite: bool = False, flags_text: Optional[str] = None):
        self.cfg = cfg
        self.run_dir = run_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        check_replicas(cfg.gan, self.strategy.num_replicas_in_sync)
        self._classifier, self._real_stats = check_inputs(cfg, classifier)
        self.guard = finite.NonFiniteGuard(cfg.on_nonfinite, f"training run {run_dir}")
        self._lock = rundir.RunDirLock(run_dir, "training run").acquire()
        try:
            resumed = self._check_run_dir(overwrite)
            self._build()
            if resumed:
                self.restore()
            elif overwrite and os.path.exists(os.path.join(run_dir, _CONFIG)):
                rundir.move_aside(run_dir)
            rundir.write_json(os.path.join(run_dir, _CONFIG), cfg.to_dict())
            rundir.record_flags(run_dir, flags_text, resumed)
        except BaseException:
            self._lock.release()
            raise
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "tb"))

    # ----- the run directory ---------------------------------------------------------------------
    def _check_run_dir(self, overwrite: bool) -> bool:
        """True to resume the run in `run_dir`, False to start one (nothing is written here)."""
        run_dir = self.run_dir
        try:
            old = _read_config(run_dir)
        except CheckpointError:
            if not overwrite:
                raise
            old = {}  # unreadable, and about to be moved aside
        if old is None:
            others = set(os.listdir(run_dir)) - _NEW_RUN_ENTRIES
            if others:
                raise RunDirError(
                    f"{run_dir} is not empty ({', '.join(sorted(others)[:5])}) and holds no "
                    f"training run (no {_CONFIG}); choose a new or empty --run_dir")
            return False
        if overwrite:
            return False
        saved = dict(old)
        saved.setdefault("gan", {})
        rundir.check_resume(
            saved, self.cfg.to_dict(), where=f"the training run in {run_dir}",
            ignore=self.cfg.resume_ignored(), defaults=TrainConfig(arch=self.cfg.arch).to_dict(),
            fix=", or pass --overwrite to move it aside and start afresh")
        return True

    def _build(self) -> None:
        cfg = self.cfg
        keras.utils.set_random_seed(seeds.derive(cfg.seed, "model_init"))
        with self.strategy.scope():
            g = build_generator(cfg)
            ema = build_generator(cfg, "ema_generator")
            d = Discriminator(cfg.df, input_resolution=cfg.resolution,
                              dtype=precision_policy(cfg.mixed_precision), name="discriminator")
        self.trainer = GANTrainer(g, d, cfg.gan, seed=seeds.derive(cfg.seed, "gan_latents"),
                                  ema_generator=ema, strategy=self.strategy)
        with self.strategy.scope():
            self.best_fid = tf.Variable(math.inf, dtype=tf.float64, trainable=False)
        self.ckpt = tf.train.Checkpoint(best_fid=self.best_fid, **self.trainer.checkpoint_items())
        self.manager = tf.train.CheckpointManager(
            self.ckpt, os.path.join(self.run_dir, _CKPT_DIR), max_to_keep=2)
        self.best_ckpt = tf.train.Checkpoint(ema_generator=ema)
        self._eval_fn = tf.function(lambda z: ema(z, training=False), autograph=False)

    def close(self) -> None:
        """Releases the run directory's lock (the object stays usable for reading)."""
        self._lock.release()

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- checkpoints -------------------------------------------------------------------------
    def checkpoints(self) -> list:
        """Checkpoint prefixes of the run, newest first: those the manager lists, then any other
        intact-looking ones on disk."""
        ckpt_dir = os.path.join(self.run_dir, _CKPT_DIR)
        listed = []
        try:
            state = tf.train.get_checkpoint_state(ckpt_dir)
        except (tf.errors.OpError, ValueError) as e:  # a damaged `checkpoint` file
            logging.warning("Cannot read %s/checkpoint (%s); looking for checkpoint files",
                            ckpt_dir, _first_line(e))
            state = None
        if state is not None:
            listed = list(state.all_model_checkpoint_paths)
            if state.model_checkpoint_path and state.model_checkpoint_path not in listed:
                listed.append(state.model_checkpoint_path)
            listed = [os.path.abspath(os.path.join(ckpt_dir, p)) for p in listed]
        on_disk = [os.path.abspath(f[:-len(".index")])
                   for f in glob.glob(os.path.join(ckpt_dir, "ckpt-*.index"))]
        return sorted(set(listed) | set(on_disk), key=_checkpoint_number, reverse=True)

    def restore(self) -> Optional[str]:
        """Restores the newest checkpoint that reads completely and holds finite weights.

        Returns:
          Its prefix, or None if the run has no checkpoint yet.

        Raises:
          CheckpointError: there are checkpoints but none can be restored (nothing is changed
            on disk).
        """
        candidates = self.checkpoints()
        failures = []
        for prefix in candidates:
            try:
                self.ckpt.read(prefix).assert_existing_objects_matched().expect_partial()
            except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
                failures.append(f"{os.path.basename(prefix)}: {_first_line(e, 160)}")
                logging.warning("Cannot restore %s: %s", prefix, _first_line(e))
                continue
            bad = finite.nonfinite_variables(self.ckpt_variables())
            if bad:
                failures.append(f"{os.path.basename(prefix)}: non-finite weights ({bad[0]})")
                logging.warning("Skipping %s: it holds non-finite weights (%s)", prefix, bad[0])
                continue
            if failures:
                logging.warning("Restored %s (generator iteration %d): the newer checkpoint(s) "
                                "could not be used: %s", prefix, self.iteration,
                                "; ".join(failures))
            else:
                logging.info("Resumed %s from %s at generator iteration %d", self.run_dir,
                             prefix, self.iteration)
            return prefix
        if failures:
            raise CheckpointError(
                f"cannot restore any checkpoint of {self.run_dir}: {'; '.join(failures)}. They "
                "are corrupt or from another configuration; nothing was changed. Keep this "
                "directory, and train in another --run_dir (with the same settings to compare)")
        return None

    @property
    def iteration(self) -> int:
        return int(self.trainer.g_iterations.numpy())  # .numpy(): also a MirroredVariable's

    def ckpt_variables(self) -> list:
        """Every variable a checkpoint holds (models, optimisers, EMA)."""
        t = self.trainer
        out = (list(t.generator.weights) + list(t.discriminator.weights)
               + list(t.ema_generator.weights) + list(t.g_opt.variables)
               + list(t.d_opt.variables))
        return out

    def save(self) -> Optional[str]:
        """Writes a checkpoint of the current iteration, if every weight is finite.

        Returns:
          The checkpoint prefix, or None when non-finite weights were found (then the guard
          restored the last good checkpoint, or raised).
        """
        bad = finite.nonfinite_variables(self.ckpt_variables())
        if bad:
            self._nonfinite(f"non-finite weights ({bad[0]}) at generator iteration "
                            f"{self.iteration}")
            return None
        path = self.manager.save(checkpoint_number=self.iteration)
        self.guard.good_checkpoint()
        return path

    def _nonfinite(self, problem: str) -> None:
        """Applies the run's NaN/Inf policy: restore the last good checkpoint, or raise."""
        last = self.manager.latest_checkpoint or "(none)"
        self.guard.on_nonfinite(problem, last)
        restored = self.restore()
        if restored is None:
            raise TrainError(f"training run {self.run_dir}: {problem}, and there is no "
                             "checkpoint to restore")
        logging.warning("%s: %s; restored %s (generator iteration %d), restore %d of %d in a "
                        "row", self.run_dir, problem, restored, self.iteration,
                        self.guard.restores_in_a_row, finite.MAX_RESTORES)

    # ----- evaluation ----------------------------------------------------------------------------
    @property
    def classifier(self):
        return self._classifier

    def real_stats(self):
        if self._real_stats is None:
            cfg = self.cfg
            self._real_stats = metrics.real_statistics(
                cfg.dataset, cfg.resolution, self.classifier, cache_dir=cfg.cache_dir,
                num_images=cfg.real_num_images, data_dir=cfg.data_dir)
        return self._real_stats

    def sampler(self, seed: int):
        """`sample_fn(n)` of the EMA generator on the latent sequence of `seed`."""
        return LatentSampler(self._eval_fn, self.cfg.gan.latent_dim, seed,
                             self.cfg.eval_batch_size)

    def sample(self, num_images: int, seed: int) -> np.ndarray:
        return draw_images(self.sampler(seed), num_images, self.cfg.eval_batch_size)

    def evaluate(self) -> Optional[dict]:
        """IS and FID of the EMA generator (fixed latents, so evaluations are comparable).

        Returns None (after the NaN/Inf policy) when the EMA generator is not finite; `best/`
        only ever receives a finite generator with a finite FID.
        """
        cfg = self.cfg
        bad = finite.nonfinite_variables(self.trainer.ema_generator.weights)
        if bad:
            self._nonfinite(f"non-finite EMA generator weights ({bad[0]}) at generator "
                            f"iteration {self.iteration}")
            return None
        t0 = time.time()
        sampler = self.sampler(seeds.derive(cfg.seed, "eval_latents"))
        scores = metrics.score_generator(sampler, cfg.eval_images, self.classifier,
                                         real_stats=self.real_stats(), splits=cfg.eval_splits,
                                         batch_size=cfg.eval_batch_size,
                                         progress=cfg.progress)
        scores = {"iteration": self.iteration, "is_mean": scores["is_mean"],
                  "is_std": scores["is_std"], "fid": scores["fid"],
                  "num_images": scores["num_images"], "seconds": round(time.time() - t0, 1)}
        with self.writer.as_default():
            tf.summary.scalar("eval/inception_score", scores["is_mean"], step=self.iteration)
            tf.summary.scalar("eval/fid", scores["fid"], step=self.iteration)
            grid_images = self.sample(64, seeds.derive(cfg.seed, "grid_latents"))
            log_image_grid("samples/ema", grid_images, self.iteration,
                           os.path.join(self.run_dir, "samples",
                                        f"iter{self.iteration:06d}.png"))
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "a") as f:
            f.write(json.dumps(scores) + "\n")
        if not math.isfinite(scores["fid"]):
            logging.warning("FID %s at generator iteration %d: best/ is kept as it was",
                            scores["fid"], self.iteration)
        elif scores["fid"] < float(self.best_fid.numpy()):
            self.best_fid.assign(scores["fid"])
            os.makedirs(os.path.join(self.run_dir, "best"), exist_ok=True)
            self.best_ckpt.write(os.path.join(self.run_dir, "best", "ema_generator"))
            rundir.write_json(os.path.join(self.run_dir, "best", "scores.json"), scores, None)
        return scores

    # ----- training ------------------------------------------------------------------------------
    def _learning_rates(self, iteration: int):
        g, d = self.cfg.gan.g_lr, self.cfg.gan.d_lr
        if not self.cfg.lr_decay:
            return g, d
        frac = max(0.0, 1.0 - iteration / self.cfg.max_iterations)
        return g * frac, d * frac

    def train(self) -> dict:
        """Trains to `max_iterations` (from where the run stands); returns the report.

        Raises:
          NonFiniteError: the run diverged (see `finite`); what was saved is finite.
        """
        cfg, gan = self.cfg, self.cfg.gan
        start = self.iteration
        if self.manager.latest_checkpoint is None:
            self.save()  # the initial weights: a last good checkpoint to restore from
        ds = data_lib.make_dataset(cfg.dataset, cfg.resolution, gan.d_batch_size,
                                   seed=seeds.derive(cfg.seed, "data_order", start),
                                   data_dir=cfg.data_dir)
        it = iter(ds)
        bar = keras.utils.Progbar(cfg.max_iterations, verbose=1 if cfg.progress else 0,
                                  stateful_metrics=["d_loss", "g_loss"])
        last_eval, t0 = None, time.time()
        while self.iteration < cfg.max_iterations or last_eval is None:
            if self.iteration >= cfg.max_iterations:  # resumed at the end: evaluate once
                last_eval = self.evaluate()
                continue
            i = self.iteration
            self.trainer.set_learning_rates(*self._learning_rates(i))
            reals = [next(it) for _ in range(gan.n_critic)]
            losses = self.trainer.train_iteration(reals)
            bad = finite.nonfinite_losses(losses)
            if bad:
                self._nonfinite(", ".join(f"{k} {losses[k]}" for k in bad)
                                + f" at generator iteration {i + 1}")
                continue
            i = self.iteration
            if i % cfg.log_every == 0:
                with self.writer.as_default():
                    tf.summary.scalar("train/d_loss", losses["d_loss"], step=i)
                    tf.summary.scalar("train/g_loss", losses["g_loss"], step=i)
                    tf.summary.scalar("train/g_lr", float(self.trainer.g_opt.learning_rate.numpy()),
                                      step=i)
            bar.update(i, [("d_loss", losses["d_loss"]), ("g_loss", losses["g_loss"])])
            if i % cfg.eval_every == 0 or i == cfg.max_iterations:
                scores = self.evaluate()
                if scores is None:
                    continue
                last_eval = scores
                logging.info("iteration %d: IS %.3f +- %.3f, FID %.3f", i, scores["is_mean"],
                             scores["is_std"], scores["fid"])
            if i % cfg.checkpoint_every == 0 or i == cfg.max_iterations:
                self.save()
        self.writer.flush()
        report = {"arch": list(cfg.arch), "iterations": self.iteration,
                  "started_at_iteration": start, "final": last_eval,
                  "best_fid": float(self.best_fid.numpy()),
                  "seconds": round(time.time() - t0, 1),
                  "seconds_per_iteration": round((time.time() - t0)
                                                 / max(1, self.iteration - start), 3)}
        rundir.write_json(os.path.join(self.run_dir, "report.json"), report)
        return report


def train(cfg: TrainConfig, run_dir: str, strategy=None, classifier=None,
          overwrite: bool = False, flags_text: Optional[str] = None) -> dict:
    """Trains (or resumes) one derived architecture in `run_dir`; returns the report.

    Everything is checked before anything is written (see `Trainer`); the run directory is
    locked until training ends. Under a multi-worker strategy every task calls this with a
    run directory of its own (`distribute.task_dir`) and it returns when all have finished.
    """
    with Trainer(cfg, run_dir, strategy=strategy, classifier=classifier, overwrite=overwrite,
                 flags_text=flags_text) as trainer:
        report = trainer.train()
    distribute.barrier(strategy)  # multi-worker: every task has finished
    return report


def _find_run(path: str):
    """(run_dir, checkpoint prefix, kind) for a run dir or checkpoint prefix."""
    if os.path.isdir(path) and os.path.exists(os.path.join(path, _CONFIG)):
        best = os.path.join(path, "best", "ema_generator")
        if tf.io.gfile.exists(best + ".index"):
            return path, best, "best"
        latest = tf.train.latest_checkpoint(os.path.join(path, "ckpt"))
        if latest:
            return path, latest, "latest"
        raise CheckpointError(f"{path} is a training run without checkpoints yet; train first")
    if tf.io.gfile.exists(path + ".index"):
        run_dir = os.path.dirname(os.path.dirname(os.path.abspath(path)))
        if not os.path.exists(os.path.join(run_dir, _CONFIG)):
            raise CheckpointError(f"no {_CONFIG} next to checkpoint {path} (expected in "
                                  f"{run_dir}); pass the training run directory")
        return run_dir, path, "prefix"
    raise CheckpointError(f"{path} is neither a training run directory (with {_CONFIG}) nor a "
                          "checkpoint prefix (with a .index file)")


def load_generator_from_checkpoint(path: str):
    """The EMA generator of a training run (best-by-FID if present, else the latest).

    Args:
      path: a training run directory or a checkpoint prefix inside one.

    Returns:
      (generator, info) with info = {'run_dir', 'checkpoint', 'kind', 'arch'}.

    Raises:
      CheckpointError: missing, corrupt, or not matching the run's architecture.
    """
    run_dir, prefix, kind = _find_run(path)
    cfg = TrainConfig.from_dict(_read_config(run_dir))
    gen = build_generator(cfg, "ema_generator")
    try:
        status = tf.train.Checkpoint(ema_generator=gen).read(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
        raise CheckpointError(
            f"cannot restore the generator of architecture {list(cfg.arch)} from {prefix}: "
            f"{_first_line(e)}. The checkpoint is corrupt or of another architecture") from e
    bad = finite.nonfinite_variables(gen.weights)
    if bad:
        raise NonFiniteError(f"{prefix} holds non-finite weights ({bad[0]}): that training run "
                             "diverged; use a checkpoint from before, or train again")
    return gen, {"run_dir": run_dir, "checkpoint": prefix, "kind": kind, "arch": list(cfg.arch)}
