"""Run the AutoGAN architecture search.

    python -m autogan_tf.search --flagfile=configs/search_digits.cfg        # offline quickstart
    python -m autogan_tf.search --flagfile=configs/search_cifar10.cfg       # the paper's search

Writes `<run_dir>/search/`: `flags.txt` (the resolved flags), the keras-tuner oracle state and
trials, controller checkpoints, shared-GAN checkpoints, `top_architectures.json` (the final
beam, best first, ready for `python -m autogan_tf.train --arch=...`), TensorBoard logs in `tb/`
(losses, rewards, baseline, entropy, resets, stage, sample grids) and PNG grids in `samples/`.
Killed at any moment and started again with the same command, it resumes where it was, losing
at most the trial in flight. `--overwrite` starts afresh.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from autogan_tf.cli import common as flag_defs  # noqa: E402
from autogan_tf.cli import runner  # noqa: E402

_RUN_DIR = flags.DEFINE_string("run_dir", "runs/digits", "Run directory.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Delete the run's search state and start "
                               "afresh instead of resuming.")
_ITERS = flags.DEFINE_list("iterations_per_stage", ["15", "20", "30"],
                           "Search iterations of stages 0, 1, 2.")
_CTRL_STEPS = flags.DEFINE_integer("controller_steps", 30, "Controller steps per iteration.",
                                   lower_bound=1)
_M = flags.DEFINE_integer("num_candidates", 10, "Architectures scored at each grow (M).",
                          lower_bound=1)
_K = flags.DEFINE_integer("top_k", 5, "Beam width (K).", lower_bound=1)
_CTRL_LR = flags.DEFINE_float("ctrl_lr", 3.5e-4, "Controller Adam learning rate.")
_ENTROPY = flags.DEFINE_float("entropy_coef", 1e-3, "Entropy bonus (paper 1e-4, reference 1e-3).")
_BASELINE = flags.DEFINE_float("baseline_decay", 0.9, "Moving-average baseline decay.")
_HIDDEN = flags.DEFINE_integer("hidden_size", 100, "Controller LSTM width.", lower_bound=1)
_EPOCHS = flags.DEFINE_integer("shared_epochs", 15, "Max epochs of shared training per "
                               "iteration.", lower_bound=1)
_MAX_STEPS = flags.DEFINE_integer("max_shared_steps", 0, "Cap on D steps per iteration "
                                  "(0: none).", lower_bound=0)
_REWARD_IMAGES = flags.DEFINE_integer("reward_images", 5000, "Images per child reward.",
                                      lower_bound=1)
_REWARD_SPLITS = flags.DEFINE_integer("reward_splits", 10, "IS splits of a reward.",
                                      lower_bound=1)
_DYN_RESET = flags.DEFINE_bool("dynamic_reset", True, "Dynamic resetting of the shared GAN.")
_RESET_WINDOW = flags.DEFINE_integer("reset_window", 500, "Loss window of dynamic reset.",
                                     lower_bound=1)
_RESET_THRESHOLD = flags.DEFINE_float("reset_threshold", 1e-3, "Variance threshold of dynamic "
                                      "reset.", lower_bound=0.0)
_LOG_EVERY = flags.DEFINE_integer("log_every", 50, "D steps between loss scalars.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    flag_defs.quiet_info_logs()
    from autogan_tf.search import search_lib
    from autogan_tf.search.oracle import OracleConfig
    try:
        iters = tuple(int(v) for v in _ITERS.value)
        oracle_cfg = OracleConfig(
            iterations_per_stage=iters, controller_steps=_CTRL_STEPS.value,
            num_candidates=_M.value, top_k=_K.value, controller_lr=_CTRL_LR.value,
            entropy_coef=_ENTROPY.value, baseline_decay=_BASELINE.value,
            hidden_size=_HIDDEN.value, seed=flag_defs.SEED.value)
        train_cfg = flag_defs.shared_training_config(
            max_epochs_per_iteration=_EPOCHS.value, max_steps_per_iteration=_MAX_STEPS.value,
            reward_images=_REWARD_IMAGES.value, reward_splits=_REWARD_SPLITS.value,
            dynamic_reset=_DYN_RESET.value, reset_window=_RESET_WINDOW.value,
            reset_threshold=_RESET_THRESHOLD.value, log_every=_LOG_EVERY.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    result = search_lib.run_search(oracle_cfg, train_cfg, _RUN_DIR.value,
                                   overwrite=_OVERWRITE.value, strategy=flag_defs.make_strategy(),
                                   flags_text=flags.FLAGS.flags_into_string())
    print(json.dumps(result))


if __name__ == "__main__":
    runner.run(main, "search")
