"""Compiled GAN training steps: hinge-loss D and G steps, Adam, n_critic, EMA of G.

`GANTrainer` owns the optimizers, the latent RNG, the EMA copy of the generator and the
`tf.function` steps. It serves both the search (a `SharedGenerator`, the architecture an int32
tensor argument of the step, so one trace serves a whole stage) and the training of a derived
architecture (a `DerivedGenerator`, no architecture argument). Steps run under the active
`tf.distribute` strategy: each replica takes its slice of the global batch, so the result equals
a single-device step on the same global batch. Latents are drawn outside the compiled step from a
seeded `tf.random.Generator`, so XLA and plain steps see the same numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from autogan_tf.errors import ConfigError
from autogan_tf.nn import layers as L
from autogan_tf.nn import losses
from autogan_tf import search_space as ss
from autogan_tf.training.precision import precision_policy

__all__ = ["GANConfig", "GANTrainer", "check_replicas", "precision_policy"]


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """Hyperparameters of shared-GAN search training and derived-architecture training.

    Defaults are the reference search settings (SPEC section 3); training a derived
    architecture sets `ema_decay=0.999`.
    """

    latent_dim: int = 128
    g_batch_size: int = 128
    d_batch_size: int = 64
    n_critic: int = 5
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta_1: float = 0.0
    beta_2: float = 0.9
    adam_epsilon: float = 1e-8  # PyTorch's default
    ema_decay: Optional[float] = None
    jit_compile: bool = False

    def __post_init__(self):
        for name in ("latent_dim", "g_batch_size", "d_batch_size", "n_critic"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("g_lr", "d_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def _adam(lr, cfg: GANConfig, name):
    return keras.optimizers.Adam(learning_rate=lr, beta_1=cfg.beta_1, beta_2=cfg.beta_2,
                                 epsilon=cfg.adam_epsilon, name=name)


def check_replicas(cfg: GANConfig, replicas: int) -> None:
    """Checks that `cfg` fits a strategy of `replicas` replicas.

    The batch sizes are global: each replica takes an equal slice of them. `jit_compile`
    compiles a whole step, `strategy.run` included, for one device, so it needs one replica.

    Raises:
      ConfigError: a batch size that `replicas` does not divide, or XLA with more than one.
    """
    for name in ("d_batch_size", "g_batch_size"):
        if getattr(cfg, name) % replicas:
            raise ConfigError(f"{name} {getattr(cfg, name)} is the global batch and must split "
                              f"evenly over the {replicas} replicas; choose a multiple of "
                              f"{replicas}")
    if cfg.jit_compile and replicas > 1:
        raise ConfigError(f"XLA (--xla) compiles each step for one device and cannot run on "
                          f"{replicas} replicas; leave out --xla or use one device")


class GANTrainer:
    """Owns optimizers, latent RNG, EMA generator and the compiled steps.

    Args:
      generator: a `SharedGenerator` (steps take an `arch` int32 [14]) or `DerivedGenerator`.
      discriminator: a `Discriminator`.
      config: `GANConfig`.
      seed: seeds the latent sampler.
      ema_generator: a generator of the same configuration to hold the EMA weights (required
        when `config.ema_decay` is set).
      strategy: a `tf.distribute.Strategy`; models and this trainer must be built in its scope.
    """

    def __init__(self, generator, discriminator, config: GANConfig = GANConfig(), seed: int = 0,
                 ema_generator=None, strategy: Optional[tf.distribute.Strategy] = None):
        self.generator = generator
        self.discriminator = discriminator
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.takes_arch = hasattr(generator, "stage")
        if config.ema_decay is not None and ema_generator is None:
            raise ValueError("config.ema_decay is set: pass ema_generator")
        self.ema_generator = ema_generator
        check_replicas(config, self.strategy.num_replicas_in_sync)
        with self.strategy.scope():
            self.g_opt = _adam(config.g_lr, config, "g_adam")
            self.d_opt = _adam(config.d_lr, config, "d_adam")
            self.g_opt.build(generator.trainable_variables)
            self.d_opt.build(discriminator.trainable_variables)
            self.rng = tf.random.Generator.from_seed(seed)
            self.g_iterations = tf.Variable(0, dtype=tf.int64, trainable=False,
                                            name="g_iterations")
        if ema_generator is not None:
            self.copy_to_ema()
        self._make_steps()

    # ----- state ---------------------------------------------------------------------------
    def checkpoint_items(self) -> dict:
        """Everything a resumed run needs, for `tf.train.Checkpoint(**items)`."""
        items = {"generator": self.generator, "discriminator": self.discriminator,
                 "g_opt": self.g_opt, "d_opt": self.d_opt, "rng": self.rng,
                 "g_iterations": self.g_iterations}
        if self.ema_generator is not None:
            items["ema_generator"] = self.ema_generator
        return items

    def set_stage(self, stage: int) -> None:
        """Grows (or sets) generator and discriminator to `stage`; retraces the steps."""
        self.generator.set_stage(stage)
        self.discriminator.set_stage(stage)
        self._make_steps()

    def copy_to_ema(self) -> None:
        for e, w in zip(self.ema_generator.weights, self.generator.weights):
            e.assign(w)

    def set_learning_rates(self, g_lr: float, d_lr: float) -> None:
        self.g_opt.learning_rate.assign(g_lr)
        self.d_opt.learning_rate.assign(d_lr)

    # ----- compiled steps --------------------------------------------------------------------
    def _make_steps(self):
        jit = self.config.jit_compile
        self.d_step_fn = tf.function(self._d_step, jit_compile=jit, autograph=False)
        self.g_step_fn = tf.function(self._g_step, jit_compile=jit, autograph=False)
        self.iteration_fn = tf.function(self._iteration, jit_compile=jit, autograph=False)

    def _iteration(self, reals, z_d, z_g, archs):
        """n_critic D steps and the G step (with EMA) as one function: the same ops, in the
        same order, on the same latents as separate `d_step` and `g_step` calls."""
        d_losses = [self._d_step(real, z, arch) for real, z, arch in zip(reals, z_d, archs)]
        return tf.stack(d_losses), self._g_step(z_g, archs[-1])

    def _gen(self, z, arch, training):
        if self.takes_arch:
            return self.generator(z, arch, training=training)
        return self.generator(z, training=training)

    def _replica_slice(self, x, global_batch):
        n = self.strategy.num_replicas_in_sync
        if n == 1:
            return x
        rid = tf.distribute.get_replica_context().replica_id_in_sync_group
        b = global_batch // n
        return x[rid * b:(rid + 1) * b]

    def _d_step(self, real, z, arch):
        cfg, n = self.config, self.strategy.num_replicas_in_sync

        def replica_fn(real, z, arch):
            real = self._replica_slice(real, cfg.d_batch_size)
            z = self._replica_slice(z, cfg.d_batch_size)
            fake = tf.stop_gradient(self._gen(z, arch, True))
            d_vars = self.discriminator.trainable_variables
            with tf.GradientTape() as tape:
                logits = self.discriminator(tf.concat([real, fake], 0), training=True)
                real_logits, fake_logits = tf.split(logits, 2, axis=0)
                loss = losses.discriminator_hinge_loss(real_logits, fake_logits)
                scaled = loss / n
            with L.conv_gradients():
                grads = tape.gradient(scaled, d_vars)
            self.d_opt.apply_gradients(
                [(g, v) for g, v in zip(grads, d_vars) if g is not None])
            return scaled

        per_replica = self.strategy.run(replica_fn, args=(real, z, arch))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def _g_step(self, z, arch):
        cfg, n = self.config, self.strategy.num_replicas_in_sync

        def replica_fn(z, arch):
            z = self._replica_slice(z, cfg.g_batch_size)
            g_vars = self.generator.trainable_variables
            with tf.GradientTape() as tape:
                fake = self._gen(z, arch, True)
                loss = losses.generator_hinge_loss(self.discriminator(fake, training=True))
                scaled = loss / n
            with L.conv_gradients():
                grads = tape.gradient(scaled, g_vars)
            self.g_opt.apply_gradients(
                [(g, v) for g, v in zip(grads, g_vars) if g is not None])
            return scaled

        per_replica = self.strategy.run(replica_fn, args=(z, arch))
        loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        self.g_iterations.assign_add(1)
        if self.ema_generator is not None:
            self._update_ema()
        return loss

    def _update_ema(self):
        decay = tf.constant(self.config.ema_decay, tf.float32)
        for e, w in zip(self.ema_generator.trainable_variables,
                        self.generator.trainable_variables):
            e.assign(decay * e + (1.0 - decay) * tf.cast(w, e.dtype))
        # The reference evaluates EMA weights with the live BN running statistics.
        for e, w in zip(self.ema_generator.non_trainable_variables,
                        self.generator.non_trainable_variables):
            e.assign(w)

    # ----- public steps ----------------------------------------------------------------------
    def _arch_tensor(self, arch):
        if not self.takes_arch:
            return tf.zeros([ss.ARCH_LENGTH], tf.int32)
        if arch is None:
            raise ValueError("a SharedGenerator step needs an architecture")
        arch = tf.convert_to_tensor(arch, tf.int32)
        if arch.shape != (ss.ARCH_LENGTH,):
            raise ValueError(f"arch must be int32 [{ss.ARCH_LENGTH}], got shape {arch.shape}")
        return arch

    def _real_batch(self, real) -> tf.Tensor:
        real = tf.convert_to_tensor(real, tf.float32)
        if real.shape[0] != self.config.d_batch_size:
            raise ValueError(
                f"real batch has {real.shape[0]} images, d_batch_size is "
                f"{self.config.d_batch_size}")
        return real

    def d_step(self, real, arch=None) -> tf.Tensor:
        """One discriminator step on a real batch [d_batch, R, R, 3] in [-1, 1]."""
        real = self._real_batch(real)
        z = self.rng.normal([self.config.d_batch_size, self.config.latent_dim])
        return self.d_step_fn(real, z, self._arch_tensor(arch))

    def g_step(self, arch=None) -> tf.Tensor:
        """One generator step on g_batch latents (and the EMA update when enabled)."""
        z = self.rng.normal([self.config.g_batch_size, self.config.latent_dim])
        return self.g_step_fn(z, self._arch_tensor(arch))

    fuse_iteration: bool = True
    """`train_iteration` runs as one compiled function (False: one call per step)."""

    def train_iteration(self, real_batches, archs=None) -> dict:
        """n_critic D steps (one real batch and architecture each) and one G step.

        The G step uses the last D step's architecture, as the reference does. The steps run
        as one compiled function (`iteration_fn`, one trace per stage), with the same latents
        and results as `d_step` and `g_step` called in turn.
        """
        cfg = self.config
        if len(real_batches) != cfg.n_critic:
            raise ValueError(f"need {cfg.n_critic} real batches, got {len(real_batches)}")
        archs = [None] * cfg.n_critic if archs is None else list(archs)
        if not self.fuse_iteration:
            d_loss = None
            for real, arch in zip(real_batches, archs):
                d_loss = self.d_step(real, arch)
            g_loss = self.g_step(archs[-1])
            return {"d_loss": float(d_loss), "g_loss": float(g_loss)}
        d_losses, g_loss = self.iteration_fn(*self.iteration_args(real_batches, archs))
        return {"d_loss": float(d_losses[-1]), "g_loss": float(g_loss)}

    def iteration_args(self, real_batches, archs) -> tuple:
        """The arguments of `iteration_fn` (draws the iteration's latents, D steps' first)."""
        cfg = self.config
        reals = tuple(self._real_batch(r) for r in real_batches)
        archs = tuple(self._arch_tensor(a) for a in archs)
        z_d = tuple(self.rng.normal([cfg.d_batch_size, cfg.latent_dim]) for _ in reals)
        z_g = self.rng.normal([cfg.g_batch_size, cfg.latent_dim])
        return reals, z_d, z_g, archs
