r"""Exports the EMA generator of a training run as a SavedModel version for TF Serving.

Example::

    python -m autogan_tf.export --checkpoint=runs/cifar10_a/train \
        --export_dir=export/autogan_cifar10_a [--version=3]

``--checkpoint`` is a training run directory (its latest checkpoint is used) or a checkpoint
prefix. The command writes ``<export_dir>/<version>/`` (``saved_model.pb``, ``variables/``,
``assets/arch.json``); without ``--version`` the version is one more than the highest existing
one, or 1. It prints the written directory and a ``saved_model_cli`` command to inspect it.
Serve it with ``tensorflow_model_server --model_name=autogan --model_base_path=<export_dir>``
(absolute path); see ``export/README.md``.

A missing, corrupt or mismatched checkpoint, or an existing version directory, ends the program
with a message and exit status 1; nothing is written in that case.
"""

from __future__ import annotations

import os

__all__ = ["main"]


def _define_flags() -> None:
    from absl import flags  # pylint: disable=import-outside-toplevel

    flags.DEFINE_string(
        "checkpoint", None, "Training run directory or checkpoint prefix holding the EMA generator."
    )
    flags.DEFINE_string(
        "export_dir", None, "Export base, e.g. export/<name>; versions go in numbered subfolders."
    )
    flags.DEFINE_integer(
        "version", None, "Version number to write (default: highest existing + 1, or 1).",
        lower_bound=1,
    )
    flags.DEFINE_integer(
        "max_num_images", 1024, "Largest num_images the 'generate' signature accepts.",
        lower_bound=1,
    )
    flags.mark_flags_as_required(["checkpoint", "export_dir"])


def main(argv: list[str]) -> None:
    """Loads the checkpoint and exports it; input errors exit with status 1 and a message."""
    # pylint: disable=import-outside-toplevel
    from absl import app, flags

    from autogan_tf.serving import export_lib
    from autogan_tf.training import train_lib

    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS  # pylint: disable=invalid-name
    if FLAGS.version is not None:
        target = os.path.join(FLAGS.export_dir, str(FLAGS.version))
        if os.path.exists(target):  # Checked before the (slow) checkpoint load.
            raise export_lib.ExportError(f"{target} already exists; nothing was written.")
    generator, info = train_lib.load_generator_from_checkpoint(FLAGS.checkpoint)
    metadata = {"checkpoint": os.path.abspath(FLAGS.checkpoint)}
    metadata.update(info or {})
    path = export_lib.export_generator(
        generator,
        FLAGS.export_dir,
        FLAGS.version,
        max_num_images=FLAGS.max_num_images,
        metadata=metadata,
    )
    print(f"Exported SavedModel: {path}")
    print(f"Inspect it with: saved_model_cli show --dir {path} --all")


if __name__ == "__main__":
    from autogan_tf.cli import runner

    _define_flags()
    runner.run(main, "export")
