"""The configuration of the search's shared-GAN training and rewards (`SharedTrainingConfig`).

Apart from the tuner that runs it, so that binaries and libraries can read its defaults
without importing keras-tuner.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from autogan_tf.training import finite
from autogan_tf.training.gan import GANConfig

__all__ = ["REWARDS", "fid_reward", "SharedTrainingConfig"]

REWARDS = {"is": "inception_score", "fid": "fid_reward"}
"""Reward kind -> the keras-tuner objective (metric name) a trial reports."""


def fid_reward(fid: float) -> float:
    """The reward of a child from its FID: -ln(FID), higher for a better generator.

    The paper rewards 1/FID; any decreasing transform ranks children alike. The logarithm keeps
    rewards on the scale of Inception Scores (a generator twice as far from the data scores
    0.69 less), so the controller's learning rate and baseline work unchanged.
    """
    return -math.log(max(float(fid), 1e-6))


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
      reward: 'is' (Inception Score, the paper's reward) or 'fid' (`fid_reward` of the FID
        against the real statistics at the stage's resolution, cached under cache_dir).
      reward_images, reward_splits: images (5,000) and IS splits (10) of a child's reward.
      classifier: 'inception', 'digits' or a local SavedModel path.
      cache_dir: where the digits classifier and statistics are cached.
      dynamic_reset, reset_window, reset_threshold: the dynamic-reset rule (see DynamicReset).
      mixed_precision: build the shared GAN with `mixed_bfloat16`.
      seed: seeds initialisation, data order, latents and minibatch architectures.
      log_every: D steps between TensorBoard loss scalars.
      progress: show progress bars.
      on_nonfinite: 'restore' the shared GAN's state from the start of the iteration when
        losses or weights turn non-finite (stop after `finite.MAX_RESTORES` in a row), or
        'stop' at once.
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
    reward: str = "is"
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
    on_nonfinite: str = "restore"

    def __post_init__(self):
        finite.check_policy(self.on_nonfinite)
        positive = ("bottom_width", "gf", "df", "max_epochs_per_iteration", "reward_images",
                    "reward_splits", "reward_batch_size", "reset_window", "log_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps_per_iteration", "steps_per_epoch", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {sorted(REWARDS)}, got {self.reward!r}")
        if self.reward_images < self.reward_splits:
            raise ValueError(f"reward_images ({self.reward_images}) must be >= reward_splits "
                             f"({self.reward_splits})")

    def resolution(self, stage: int) -> int:
        return self.bottom_width * 2 ** (stage + 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
