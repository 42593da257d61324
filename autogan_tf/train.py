"""Train a discovered architecture from scratch.

    python -m autogan_tf.train --flagfile=configs/train_digits.cfg          # offline
    python -m autogan_tf.train --flagfile=configs/train_cifar10_a.cfg       # the paper's G
    python -m autogan_tf.train --arch=runs/digits/search/top_architectures.json \\
        --flagfile=configs/train_digits.cfg --run_dir=runs/digits/train

`--arch` takes a reference name, 14 integers or an architecture JSON (the search's
`top_architectures.json` gives its best). Writes the run directory described in
`autogan_tf/training/train_lib.py` (checkpoints with the EMA generator, the best-by-FID generator
in `best/`, TensorBoard, sample grids, metrics.jsonl, report.json). Started again with the same
command after a kill, it resumes from the last intact checkpoint; started with settings that
change results, it refuses and names them. The dataset, the classifier and the statistics are
checked before anything is written; one process at a time may use a run directory.
`--overwrite` moves an earlier run aside (to `<run_dir>.replaced-<time>`) and starts afresh.

`--strategy=mirrored` trains data parallel on all local GPUs (`--num_cpu_replicas=N` splits a
CPU host into N replicas); `--strategy=multi_worker` on the tasks of `TF_CONFIG`, every task
with the same command: the chief writes `--run_dir`, each other task its own copy in
`<run_dir>-<task type>-<index>`. The batch flags are global batches.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf import search_space as ss  # noqa: E402
from autogan_tf.cli import common, model_flags, runner, train_flags  # noqa: E402
from autogan_tf.training import train_lib  # noqa: E402

__all__ = ["main"]

_ARCH = flags.DEFINE_string("arch", "autogan_cifar10_a", "Name, 14 integers or a JSON file.")
_RUN_DIR = common.define_run_dir("runs/train")
for _module in (model_flags, common, train_flags):  # --help lists them, not only --helpfull
    flags.adopt_module_key_flags(_module)


def main(argv):
    del argv  # no positional arguments (the runner refuses them)
    common.setup()
    try:
        arch = ss.Architecture.parse(_ARCH.value)
        cfg = train_flags.train_config(arch.tokens)
    except ValueError as e:  # ConfigError, ArchitectureError and the dataclasses' checks
        raise app.UsageError(str(e)) from e
    strategy = common.make_strategy()  # before anything runs TensorFlow
    print(arch.describe(), flush=True)
    report = train_lib.train(cfg, common.task_run_dir(_RUN_DIR.value, strategy),
                             strategy=strategy, overwrite=common.OVERWRITE.value,
                             flags_text=flags.FLAGS.flags_into_string())
    print(json.dumps(report))


if __name__ == "__main__":
    runner.run(main, "train")
