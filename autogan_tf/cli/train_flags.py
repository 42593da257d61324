"""absl flags of training a derived architecture (shared by `train` and `derive`).

Defaults come from `TrainConfig`; `train_config(arch)` turns the flags into one.
"""

from __future__ import annotations

from absl import flags

from autogan_tf.cli import common
from autogan_tf.training.train_lib import TrainConfig

__all__ = ["MAX_ITER", "LR_DECAY", "EMA", "EVAL_EVERY", "EVAL_IMAGES", "REAL_NUM", "REAL_STATS",
           "CKPT_EVERY", "train_config"]

MAX_ITER = flags.DEFINE_integer("max_iter", TrainConfig.max_iterations, "Generator iterations.",
                                lower_bound=1)
LR_DECAY = flags.DEFINE_bool("lr_decay", TrainConfig.lr_decay,
                             "Linear learning-rate decay to 0.")
EMA = flags.DEFINE_float("ema_decay", None, "EMA decay of the generator weights; default "
                         f"{TrainConfig.gan.ema_decay}.", lower_bound=0.0,
                         upper_bound=0.999999)
EVAL_EVERY = flags.DEFINE_integer("eval_every", TrainConfig.eval_every, "Generator iterations "
                                  "between IS/FID evaluations.", lower_bound=1)
EVAL_IMAGES = flags.DEFINE_integer("eval_images", TrainConfig.eval_images,
                                   "Images per evaluation.", lower_bound=1)
REAL_NUM = flags.DEFINE_integer("real_num_images", TrainConfig.real_num_images, "Real images "
                                "for the FID statistics (default: the whole dataset).",
                                lower_bound=1)
REAL_STATS = flags.DEFINE_string("real_stats", TrainConfig.real_stats,
                                 "Precomputed real statistics (.npz).")
CKPT_EVERY = flags.DEFINE_integer("checkpoint_every", TrainConfig.checkpoint_every,
                                  "Generator iterations between checkpoints.", lower_bound=1)


def train_config(arch) -> TrainConfig:
    """A `TrainConfig` for `arch` (14 tokens or a spec) from the flags.

    Raises:
      ConfigError: values that do not fit together (the binaries report a usage error).
    """
    return TrainConfig(
        arch=arch, gan=common.gan_config(TrainConfig.gan, ema_decay=EMA.value),
        max_iterations=MAX_ITER.value, lr_decay=LR_DECAY.value, eval_every=EVAL_EVERY.value,
        eval_images=EVAL_IMAGES.value, real_num_images=REAL_NUM.value,
        real_stats=REAL_STATS.value, checkpoint_every=CKPT_EVERY.value,
        **common.common_fields(TrainConfig))
