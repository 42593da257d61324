"""Inspect an architecture: decoded cells, parameters and multiply-accumulates.

    python -m autogan_tf.arch --arch=autogan_cifar10_a [--bottom_width=6] [--gf=256] [--df=128]

`--arch` takes a reference name (autogan_cifar10_a/_b/_c), 14 integers ("1 0 1 1 ...") or an
architecture JSON file (as written by `search`). Prints one line per cell and then one JSON line
with the trainable parameters and multiply-accumulates per image of the derived generator and
of the training discriminator.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf import search_space as ss  # noqa: E402
from autogan_tf.cli import runner  # noqa: E402

_ARCH = flags.DEFINE_string("arch", "autogan_cifar10_a", "Name, 14 integers or JSON file.")
_BOTTOM_WIDTH = flags.DEFINE_integer("bottom_width", 4, "4 for 32 px, 6 for 48 px.",
                                     lower_bound=1)
_GF = flags.DEFINE_integer("gf", 256, "Generator channels.", lower_bound=1)
_DF = flags.DEFINE_integer("df", 128, "Discriminator channels.", lower_bound=1)
_LATENT = flags.DEFINE_integer("latent_dim", 128, "Latent size.", lower_bound=1)


def describe(arch_spec, bottom_width=4, gf=256, df=128, latent_dim=128) -> dict:
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
        "discriminator_params": model_stats.count_trainable_params(d),
        "discriminator_macs": model_stats.discriminator_macs(d, res),
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        arch = ss.Architecture.parse(_ARCH.value)
    except ss.ArchitectureError as e:
        raise app.UsageError(str(e)) from e
    print(arch.describe())
    stats = describe(arch, _BOTTOM_WIDTH.value, _GF.value, _DF.value, _LATENT.value)
    print(json.dumps(stats))
    sys.stdout.flush()


if __name__ == "__main__":
    runner.run(main, "arch")
