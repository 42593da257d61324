"""Train a discovered architecture from scratch.

    python -m autogan_tf.train --flagfile=configs/train_digits.cfg          # offline
    python -m autogan_tf.train --flagfile=configs/train_cifar10_a.cfg       # the paper's G
    python -m autogan_tf.train --arch=runs/digits/search/top_architectures.json \\
        --flagfile=configs/train_digits.cfg --run_dir=runs/digits/train

`--arch` takes a reference name, 14 integers or an architecture JSON (the search's
`top_architectures.json` gives its best). Writes the run directory described in
`autogan_tf/train_lib.py` (checkpoints with the EMA generator, the best-by-FID generator in
`best/`, TensorBoard, sample grids, metrics.jsonl, report.json). Started again with the same
command after a kill, it resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf.cli import common as flag_defs  # noqa: E402,F401
from autogan_tf.cli import train_flags  # noqa: E402,F401
from autogan_tf import search_space as ss  # noqa: E402
from autogan_tf.cli import runner  # noqa: E402

_ARCH = flags.DEFINE_string("arch", "autogan_cifar10_a", "Name, 14 integers or a JSON file.")
_RUN_DIR = flags.DEFINE_string("run_dir", "runs/train", "Run directory.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    flag_defs.quiet_info_logs()
    try:
        arch = ss.Architecture.parse(_ARCH.value)
        cfg = train_flags.train_config(arch.tokens)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    from autogan_tf.training import train_lib
    os.makedirs(_RUN_DIR.value, exist_ok=True)
    with open(os.path.join(_RUN_DIR.value, "flags.txt"), "w") as f:
        f.write(flags.FLAGS.flags_into_string())
    print(arch.describe(), flush=True)
    report = train_lib.train(cfg, _RUN_DIR.value, strategy=flag_defs.make_strategy())
    print(json.dumps(report))


if __name__ == "__main__":
    runner.run(main, "train")
