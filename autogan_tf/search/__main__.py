"""Run the AutoGAN architecture search.

    python -m autogan_tf.search --flagfile=configs/search_digits.cfg        # offline quickstart
    python -m autogan_tf.search --flagfile=configs/search_cifar10.cfg       # the paper's search

Writes `<run_dir>/search/`: `flags.txt` (the resolved flags), the keras-tuner oracle state and
trials, controller checkpoints, shared-GAN checkpoints, `top_architectures.json` (the final
beam, best first, ready for `python -m autogan_tf.train --arch=...`), `summary.json` (the top
architectures, mean reward per iteration, per stage the policy's entropy and KL from uniform at
start and end and the expected reward of the final policy against the uniform one, wall time,
D/G steps, resets), PNG plots in `plots/`, TensorBoard logs in `tb/` (losses, rewards,
baseline, entropy, policy figures, resets, stage, sample grids) and PNG grids in `samples/`.
Prints one line per trial and a progress bar per shared-training phase (keras-tuner's own
tables and TensorFlow's C++ logs with `--verbosity=0` or higher), then the summary.
Killed at any moment and started again with the same command, it resumes where it was, losing
at most the trial in flight; started again with settings that change results, it refuses and
names them. The dataset and the classifier are checked before anything is written; one process
at a time may use a search directory. `--overwrite` moves the earlier search aside (to
`<run_dir>/search.replaced-<time>`) and starts afresh. With `--deterministic`, the same seed
gives bit-identical results on CPU, and a search killed and resumed equals an uninterrupted one.

Baselines and ablations (paper section 4.3): `--sampler=uniform` (random search with weight
sharing), `--sampler=uniform --noweight_sharing` (random search, each architecture trained
from scratch), `--nomlas` (single-level search), `--nodynamic_reset`, `--reward=fid`;
`--ctrl_lr=0` freezes the controller (the control for "does the controller learn").

`--strategy=mirrored` (all local GPUs, or `--num_cpu_replicas=N` on a CPU host) or
`--strategy=multi_worker` (`TF_CONFIG`; every task runs the same command, the chief writes
`--run_dir`, each other task `<run_dir>-<task type>-<index>`) trains the shared GAN data
parallel, batch norm synchronised; rewards are computed on each task.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf.cli import common, model_flags, runner, search_flags  # noqa: E402
from autogan_tf.search import search_lib  # noqa: E402

__all__ = ["main"]

_RUN_DIR = common.define_run_dir("runs/cifar10", "Run directory (the search writes search/ in "
                                 "it).")
for _module in (model_flags, common, search_flags):  # --help lists them, not only --helpfull
    flags.adopt_module_key_flags(_module)


def main(argv):
    del argv  # no positional arguments (the runner refuses them)
    common.setup()
    if not flags.FLAGS["verbosity"].present:
        # Without --verbosity: no retracing notes (e.g. of the controller's sampler).
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.get_logger().setLevel("ERROR")
    try:
        oracle_cfg = search_flags.oracle_config()
        train_cfg = search_flags.shared_training_config()
    except ValueError as e:  # ConfigError and the dataclasses' checks
        raise app.UsageError(str(e)) from e
    strategy = common.make_strategy()  # before anything runs TensorFlow
    from autogan_tf.search import summary as summary_lib
    verbose = flags.FLAGS["verbosity"].present
    result = search_lib.run_search(oracle_cfg, train_cfg,
                                   common.task_run_dir(_RUN_DIR.value, strategy),
                                   overwrite=common.OVERWRITE.value, strategy=strategy,
                                   flags_text=flags.FLAGS.flags_into_string(),
                                   report=lambda line: print(line, flush=True),
                                   keras_tuner_verbose=1 if verbose else 0)
    print(summary_lib.format_summary(result, result["project_dir"]))
    print(json.dumps(result))


if __name__ == "__main__":
    runner.run(main, "search")
