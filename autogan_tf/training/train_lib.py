"""Trains a derived architecture from scratch, with periodic IS/FID and resumable checkpoints.

Layout of a training run directory::

    config.json        the resolved TrainConfig (architecture included)
    flags.txt          the binary's resolved flags
    ckpt/              the latest checkpoints (G, D, EMA G, both optimisers, RNG, iteration)
    best/              the EMA generator of the best FID so far (what `export` takes)
    tb/                TensorBoard: losses, learning rates, IS, FID, sample grids
    samples/           PNG grids of the EMA generator at each evaluation
    metrics.jsonl      one line per evaluation
    report.json        the final summary

A run killed at any moment and started again with the same command continues from its last
checkpoint with the same iteration count, EMA weights and optimiser state.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Optional

import keras
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
from autogan_tf.nn.generators import DerivedGenerator

__all__ = ["TrainConfig", "TrainError", "CheckpointError", "Trainer", "train",
           "load_generator_from_checkpoint", "build_generator"]

_CONFIG = "config.json"


from autogan_tf.errors import CheckpointError, TrainError  # noqa: E402  (re-exported)


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
      real_num_images: real images for the FID statistics (None: the whole dataset).
      classifier, cache_dir, real_stats: the IS/FID network and where statistics live.
      checkpoint_every: generator iterations between checkpoints.
      mixed_precision: build the models with mixed_bfloat16.
      seed: seeds initialisation, latents and data order.
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

    def __post_init__(self):
        object.__setattr__(self, "arch", ss.Architecture.parse(self.arch).tokens)
        for name in ("bottom_width", "gf", "df", "max_iterations", "eval_every", "eval_images",
                     "eval_splits", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gan.ema_decay is None:
            raise ValueError("training keeps an EMA generator: set gan.ema_decay (0.999)")

    @property
    def resolution(self) -> int:
        return self.bottom_width * 2 ** ss.NUM_CELLS

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["arch"] = list(self.arch)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["gan"] = GANConfig(**d["gan"])
        d["arch"] = tuple(d["arch"])
        return cls(**d)


def build_generator(cfg: TrainConfig, name: str = "generator") -> DerivedGenerator:
    return DerivedGenerator(cfg.arch, latent_dim=cfg.gan.latent_dim, channels=cfg.gf,
                            bottom_width=cfg.bottom_width,
                            dtype=precision_policy(cfg.mixed_precision), name=name)


def _first_line(error: Exception, limit: int = 240) -> str:
    """The start of an error's message (TF's can list every unmatched variable's values)."""
    text = (str(error).splitlines() or [type(error).__name__])[0]
    return text if len(text) <= limit else text[:limit] + "..."


def _read_config(run_dir: str) -> Optional[dict]:
    path = os.path.join(run_dir, _CONFIG)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is unreadable ({e}); restore it or start a new run "
                              "directory") from e


class Trainer:
    """Owns the models, the GAN steps, checkpoints, evaluation and logging of one run.

    Args:
      cfg: `TrainConfig`.
      run_dir: the run directory (created; resumed if it holds a run of the same architecture).
      strategy: optional `tf.distribute.Strategy` for data-parallel steps.
      classifier: an already-loaded `metrics.Classifier` (else loaded from `cfg.classifier`).
    """

    def __init__(self, cfg: TrainConfig, run_dir: str,
                 strategy: Optional[tf.distribute.Strategy] = None, classifier=None):
        self.cfg = cfg
        self.run_dir = run_dir
        self.strategy = strategy or tf.distribute.get_strategy()
        os.makedirs(run_dir, exist_ok=True)
        old = _read_config(run_dir)
        if old is not None and list(old.get("arch", [])) != list(cfg.arch):
            raise CheckpointError(
                f"{run_dir} holds a training run of architecture {old.get('arch')}, not "
                f"{list(cfg.arch)}; use another --run_dir (nothing was overwritten)")
        with open(os.path.join(run_dir, _CONFIG + ".tmp"), "w") as f:
            json.dump(cfg.to_dict(), f, indent=1)
        os.replace(os.path.join(run_dir, _CONFIG + ".tmp"), os.path.join(run_dir, _CONFIG))
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
        self.manager = tf.train.CheckpointManager(self.ckpt, os.path.join(run_dir, "ckpt"),
                                                  max_to_keep=2)
        self.best_ckpt = tf.train.Checkpoint(ema_generator=ema)
        self._classifier = classifier
        self._real_stats = None
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "tb"))
        self._eval_fn = tf.function(lambda z: ema(z, training=False), autograph=False)
        self.restore()

    # ----- checkpoints -------------------------------------------------------------------------
    def restore(self) -> int:
        latest = self.manager.latest_checkpoint
        if latest:
            try:
                self.ckpt.read(latest).assert_existing_objects_matched()
            except (tf.errors.OpError, AssertionError, ValueError, IndexError) as e:
                raise CheckpointError(
                    f"cannot restore {latest}: {_first_line(e)}. The checkpoint is "
                    "corrupt or from another configuration; delete that checkpoint's files to "
                    "fall back to an older one, or use a new --run_dir") from e
            print(f"Resumed {self.run_dir} at generator iteration {self.iteration}", flush=True)
        return self.iteration

    @property
    def iteration(self) -> int:
        return int(self.trainer.g_iterations)

    def save(self) -> str:
        return self.manager.save(checkpoint_number=self.iteration)

    # ----- evaluation ----------------------------------------------------------------------------
    @property
    def classifier(self):
        if self._classifier is None:
            self._classifier = metrics.load_classifier(self.cfg.classifier, self.cfg.cache_dir)
        return self._classifier

    def real_stats(self):
        if self._real_stats is None:
            cfg = self.cfg
            if cfg.real_stats:
                self._real_stats = metrics.load_statistics(cfg.real_stats,
                                                           self.classifier.classifier_id)
            else:
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

    def evaluate(self) -> dict:
        """IS and FID of the EMA generator (fixed latents, so evaluations are comparable)."""
        cfg = self.cfg
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
        if scores["fid"] < float(self.best_fid):
            self.best_fid.assign(scores["fid"])
            self.best_ckpt.write(os.path.join(self.run_dir, "best", "ema_generator"))
            with open(os.path.join(self.run_dir, "best", "scores.json"), "w") as f:
                json.dump(scores, f)
        return scores

    # ----- training ------------------------------------------------------------------------------
    def _learning_rates(self, iteration: int):
        g, d = self.cfg.gan.g_lr, self.cfg.gan.d_lr
        if not self.cfg.lr_decay:
            return g, d
        frac = max(0.0, 1.0 - iteration / self.cfg.max_iterations)
        return g * frac, d * frac

    def train(self) -> dict:
        """Trains to `max_iterations` (from where the run stands); returns the report."""
        cfg, gan = self.cfg, self.cfg.gan
        start = self.iteration
        ds = data_lib.make_dataset(cfg.dataset, cfg.resolution, gan.d_batch_size,
                                   seed=seeds.derive(cfg.seed, "data_order", start), data_dir=cfg.data_dir)
        it = iter(ds)
        bar = keras.utils.Progbar(cfg.max_iterations, verbose=1 if cfg.progress else 0,
                                  stateful_metrics=["d_loss", "g_loss"])
        last_eval, t0 = None, time.time()
        while self.iteration < cfg.max_iterations:
            i = self.iteration
            self.trainer.set_learning_rates(*self._learning_rates(i))
            reals = [next(it) for _ in range(gan.n_critic)]
            losses = self.trainer.train_iteration(reals)
            i = self.iteration
            if i % cfg.log_every == 0:
                with self.writer.as_default():
                    tf.summary.scalar("train/d_loss", losses["d_loss"], step=i)
                    tf.summary.scalar("train/g_loss", losses["g_loss"], step=i)
                    tf.summary.scalar("train/g_lr", float(self.trainer.g_opt.learning_rate),
                                      step=i)
            bar.update(i, [("d_loss", losses["d_loss"]), ("g_loss", losses["g_loss"])])
            if i % cfg.eval_every == 0 or i == cfg.max_iterations:
                last_eval = self.evaluate()
                print(f"\niteration {i}: IS {last_eval['is_mean']:.3f} +- "
                      f"{last_eval['is_std']:.3f}, FID {last_eval['fid']:.3f}", flush=True)
            if i % cfg.checkpoint_every == 0 or i == cfg.max_iterations:
                self.save()
        self.writer.flush()
        if last_eval is None:
            last_eval = self.evaluate()
        report = {"arch": list(cfg.arch), "iterations": self.iteration,
                  "started_at_iteration": start, "final": last_eval,
                  "best_fid": float(self.best_fid),
                  "seconds": round(time.time() - t0, 1),
                  "seconds_per_iteration": round((time.time() - t0) / max(1, self.iteration - start), 3)}
        with open(os.path.join(self.run_dir, "report.json"), "w") as f:
            json.dump(report, f, indent=1)
        return report


def train(cfg: TrainConfig, run_dir: str, strategy=None, classifier=None) -> dict:
    """Trains (or resumes) one derived architecture in `run_dir`; returns the report."""
    try:
        data_lib.make_dataset(cfg.dataset, cfg.resolution, cfg.gan.d_batch_size,
                              data_dir=cfg.data_dir)
    except data_lib.DatasetError as e:
        raise TrainError(str(e)) from e
    return Trainer(cfg, run_dir, strategy=strategy, classifier=classifier).train()


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
    return gen, {"run_dir": run_dir, "checkpoint": prefix, "kind": kind, "arch": list(cfg.arch)}
