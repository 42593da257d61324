"""Inspect an architecture: decoded cells, parameters and multiply-accumulates.

    python -m autogan_tf.arch --arch=autogan_cifar10_a [--bottom_width=6] [--gf_dim=256] [--df_dim=128]

`--arch` takes a reference name (autogan_cifar10_a/_b/_c), 14 integers ("1 0 1 1 ...") or an
architecture JSON file (as written by `search`). Prints one line per cell and then one JSON line
with the trainable parameters and multiply-accumulates per image of the derived generator and
of the training discriminator. Unset sizes are those of training (`TrainConfig`: bottom width 4,
gf 256, df 128).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf import search_space as ss  # noqa: E402
from autogan_tf.cli import model_flags, runner  # noqa: E402
from autogan_tf.training.train_lib import TrainConfig  # noqa: E402

__all__ = ["describe", "main"]

_ARCH = flags.DEFINE_string("arch", "autogan_cifar10_a", "Name, 14 integers or JSON file.")
flags.adopt_module_key_flags(model_flags)  # --help lists them, not only --helpfull


def describe(arch_spec, bottom_width: int = TrainConfig.bottom_width, gf: int = TrainConfig.gf,
             df: int = TrainConfig.df, latent_dim: int = TrainConfig.gan.latent_dim) -> dict:
    """Statistics of the derived generator and training discriminator for `arch_spec`."""
    from autogan_tf.nn.discriminator import Discriminator
    from autogan_tf.nn.generators import DerivedGenerator
    from autogan_tf.nn import stats as model_stats

    arch = ss.Architecture.parse(arch_spec)
    g = DerivedGenerator(arch, latent_dim=latent_dim, channels=gf, bottom_width=bottom_width)
    res = g.output_resolution
    d = Discriminator(df, input_resolution=res)
    return {
        "arch": list(arch.tokens),
        "resolution": res,
        "generator_params": model_stats.count_trainable_params(g),
        "generator_macs": model_stats.generator_macs(g),
        "generator_macs_computed": model_stats.generator_macs(g, folded=True),
        "discriminator_params": model_stats.count_trainable_params(d),
        "discriminator_macs": model_stats.discriminator_macs(d, res),
        "discriminator_macs_computed": model_stats.discriminator_macs(d, res, folded=True),
    }


def main(argv):
    del argv  # no positional arguments (the runner refuses them)
    try:
        arch = ss.Architecture.parse(_ARCH.value)
    except ss.ArchitectureError as e:
        raise app.UsageError(str(e)) from e
    print(arch.describe())
    bw, gf, df = model_flags.sizes(TrainConfig)
    print(json.dumps(describe(arch, bw, gf, df, model_flags.LATENT_DIM.value)))
    sys.stdout.flush()


if __name__ == "__main__":
    runner.run(main, "arch")
