"""absl flags of the model sizes, shared by `arch`, `train`, `derive` and `search`.

The sizes whose default depends on the binary (gf 128 in search and 256 in training, df 64 and
128; the bottom width follows the dataset) default to None, meaning the default of the config
the binary builds (`TrainConfig` or `SharedTrainingConfig`); `sizes(config_cls)` resolves them.
"""

from __future__ import annotations

from absl import flags

from autogan_tf.search.config import SharedTrainingConfig
from autogan_tf.training.gan import GANConfig
from autogan_tf.training.train_lib import TrainConfig

__all__ = ["BOTTOM_WIDTH", "GF_DIM", "DF_DIM", "LATENT_DIM", "sizes"]

BOTTOM_WIDTH = flags.DEFINE_integer(
    "bottom_width", None, "Generator bottom width (4: 32 px, 6: 48 px, 2: 16 px); default: the "
    f"dataset's resolution / 8, else {TrainConfig.bottom_width}.", lower_bound=1)
GF_DIM = flags.DEFINE_integer(
    "gf_dim", None, f"Generator channels; default {SharedTrainingConfig.gf} in search, "
    f"{TrainConfig.gf} in training.", lower_bound=1)
DF_DIM = flags.DEFINE_integer(
    "df_dim", None, f"Discriminator channels; default {SharedTrainingConfig.df} in search, "
    f"{TrainConfig.df} in training.", lower_bound=1)
LATENT_DIM = flags.DEFINE_integer("latent_dim", GANConfig.latent_dim, "Latent size.",
                                  lower_bound=1)


def sizes(config_cls, bottom_width_default: int = None) -> tuple:
    """(bottom_width, gf, df) from the flags, unset ones from `config_cls`'s defaults.

    Args:
      config_cls: `TrainConfig` or `SharedTrainingConfig` (whose defaults fill unset flags).
      bottom_width_default: the bottom width when `--bottom_width` is unset (e.g. from the
        dataset); `config_cls.bottom_width` when None.
    """
    bw = BOTTOM_WIDTH.value or bottom_width_default or config_cls.bottom_width
    return bw, GF_DIM.value or config_cls.gf, DF_DIM.value or config_cls.df
