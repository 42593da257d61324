"""absl flags of training a derived architecture (shared by `train` and `derive`)."""

from __future__ import annotations

from absl import flags

from autogan_tf.cli import common as flag_defs

__all__ = ["train_config"]

MAX_ITER = flags.DEFINE_integer("max_iter", 50_000, "Generator iterations.", lower_bound=1)
LR_DECAY = flags.DEFINE_bool("lr_decay", False, "Linear learning-rate decay to 0.")
EMA = flags.DEFINE_float("ema_decay", 0.999, "EMA decay of the generator weights.",
                         lower_bound=0.0, upper_bound=0.999999)
EVAL_EVERY = flags.DEFINE_integer("eval_every", 5_000, "Generator iterations between IS/FID "
                                  "evaluations.", lower_bound=1)
EVAL_IMAGES = flags.DEFINE_integer("eval_images", 50_000, "Images per evaluation.",
                                   lower_bound=1)
REAL_NUM = flags.DEFINE_integer("real_num_images", None, "Real images for the FID statistics "
                                "(default: the whole dataset).", lower_bound=1)
REAL_STATS = flags.DEFINE_string("real_stats", None, "Precomputed real statistics (.npz).")
CKPT_EVERY = flags.DEFINE_integer("checkpoint_every", 500, "Generator iterations between "
                                  "checkpoints.", lower_bound=1)
LOG_EVERY = flags.DEFINE_integer("log_every", 50, "Iterations between loss scalars.",
                                 lower_bound=1)


def train_config(arch):
    """A TrainConfig for `arch` from the flags."""
    from autogan_tf.training.train_lib import TrainConfig
    bw, gf, df = flag_defs.model_sizes(search=False)
    return TrainConfig(
        arch=arch, dataset=flag_defs.DATASET.value, data_dir=flag_defs.DATA_DIR.value,
        bottom_width=bw, gf=gf, df=df, gan=flag_defs.gan_config(ema_decay=EMA.value),
        max_iterations=MAX_ITER.value, lr_decay=LR_DECAY.value, eval_every=EVAL_EVERY.value,
        eval_images=EVAL_IMAGES.value, real_num_images=REAL_NUM.value,
        classifier=flag_defs.default_classifier(), cache_dir=flag_defs.CACHE_DIR.value,
        real_stats=REAL_STATS.value, checkpoint_every=CKPT_EVERY.value,
        mixed_precision=flag_defs.MIXED.value, seed=flag_defs.SEED.value,
        log_every=LOG_EVERY.value, progress=flag_defs.PROGRESS.value)
