r"""Exports the EMA generator of a training run as a SavedModel version for TF Serving.

    python -m autogan_tf.export --checkpoint=runs/cifar10_a/train \
        --export_dir=export/autogan_cifar10_a [--version=3] [--max_num_images=1024]

``--checkpoint`` is a training run directory (its best-by-FID EMA generator, else its latest
checkpoint) or a checkpoint prefix inside one. The command writes ``<export_dir>/<version>/``
(``saved_model.pb``, ``variables/``, ``assets/arch.json``); without ``--version`` the version is
one more than the highest existing one, or 1. ``--max_num_images`` caps ``num_images`` of the
``generate`` signature. It prints the written directory and a ``saved_model_cli`` command to
inspect it. Serve it with ``tensorflow_model_server --model_name=autogan
--model_base_path=<export_dir>`` (absolute path); see ``export/README.md``.

A missing, corrupt or mismatched checkpoint, a generator with NaN or Inf weights, an existing
version directory or an ``--export_dir`` that is a file ends the program with a one-line message
and exit status 1; nothing is written in that case.
"""

from __future__ import annotations

import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf.cli import runner  # noqa: E402

__all__ = ["main"]

CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Training run directory or checkpoint "
                                 "prefix holding the EMA generator.", required=True)
EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Export base, e.g. export/<name>; versions "
                                 "go in numbered subfolders.", required=True)
VERSION = flags.DEFINE_integer("version", None, "Version number to write (default: highest "
                               "existing + 1, or 1).", lower_bound=1)
MAX_NUM_IMAGES = flags.DEFINE_integer("max_num_images", 1024, "Largest num_images the "
                                      "'generate' signature accepts.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    # pylint: disable=import-outside-toplevel
    from autogan_tf.serving import export_lib
    from autogan_tf.training import train_lib

    export_lib.check_export_base(EXPORT_DIR.value, VERSION.value)  # before the slow load
    generator, info = train_lib.load_generator_from_checkpoint(CHECKPOINT.value)
    metadata = {"checkpoint": os.path.abspath(CHECKPOINT.value), **(info or {})}
    path = export_lib.export_generator(generator, EXPORT_DIR.value, VERSION.value,
                                       max_num_images=MAX_NUM_IMAGES.value, metadata=metadata)
    print(f"Exported SavedModel: {path}")
    print(f"Inspect it with: saved_model_cli show --dir {path} --all")


if __name__ == "__main__":
    runner.run(main, "export")
