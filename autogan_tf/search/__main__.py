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
at most the trial in flight. `--overwrite` starts afresh.

Baselines and ablations (paper section 4.3): `--sampler=uniform` (random search with weight
sharing), `--sampler=uniform --noweight_sharing` (random search, each architecture trained
from scratch), `--nomlas` (single-level search), `--nodynamic_reset`, `--reward=fid`;
`--ctrl_lr=0` freezes the controller (the control for "does the controller learn").
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

# ----- controller settings, baselines and ablations (paper section 4.3) -----------------------
_CTRL_BATCH = flags.DEFINE_integer("ctrl_batch", 1, "Architectures scored per REINFORCE update "
                                   "(reference: 1); an iteration has controller_steps * "
                                   "ctrl_batch controller trials.", lower_bound=1)
_CTRL_BETA1 = flags.DEFINE_float("ctrl_beta1", 0.0, "Controller Adam beta_1 (reference: 0.0).",
                                 lower_bound=0.0, upper_bound=1.0)
_SAMPLER = flags.DEFINE_enum("sampler", "controller", ["controller", "uniform"],
                             "Who draws architectures: the controller (AutoGAN) or a uniform "
                             "draw of every token (random search with weight sharing: same "
                             "shared training and beam).")
_WEIGHT_SHARING = flags.DEFINE_bool("weight_sharing", True, "--noweight_sharing: random search "
                                    "without weight sharing: each iteration trains one "
                                    "uniformly drawn architecture from scratch for the "
                                    "iteration's D-step budget and scores it (needs "
                                    "--sampler=uniform).")
_MLAS = flags.DEFINE_bool("mlas", True, "Multi-level search (grow cell by cell with a beam); "
                          "--nomlas: single-level search, all 14 tokens from one controller "
                          "at full size for all the iterations, no growing, no beam.")
_REWARD = flags.DEFINE_enum("reward", "is", ["is", "fid"], "The controller's reward: Inception "
                            "Score (paper) or FID against cached real statistics, as -ln(FID).")
_POLICY_EVAL = flags.DEFINE_integer("policy_eval_archs", 20, "Architectures drawn from the "
                                    "final policy and from the uniform policy at the end of "
                                    "each stage to compare their expected rewards (0: off).",
                                    lower_bound=0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    flag_defs.quiet_info_logs()
    if not flags.FLAGS["verbosity"].present:
        # Grappler's remapper logs one harmless C++ error line per traced step (NOTES.md);
        # TensorFlow is not imported yet, so this still takes effect.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        tf.get_logger().setLevel("ERROR")  # e.g. retracing notes of the controller's sampler
    from autogan_tf.search import search_lib
    from autogan_tf.search.oracle import OracleConfig
    try:
        iters = tuple(int(v) for v in _ITERS.value)
        oracle_cfg = OracleConfig(
            iterations_per_stage=iters, controller_steps=_CTRL_STEPS.value,
            controller_batch=_CTRL_BATCH.value, num_candidates=_M.value, top_k=_K.value,
            controller_lr=_CTRL_LR.value, controller_beta_1=_CTRL_BETA1.value,
            entropy_coef=_ENTROPY.value, baseline_decay=_BASELINE.value,
            hidden_size=_HIDDEN.value, sampler=_SAMPLER.value, mlas=_MLAS.value,
            weight_sharing=_WEIGHT_SHARING.value, policy_eval_archs=_POLICY_EVAL.value,
            seed=flag_defs.SEED.value)
        train_cfg = flag_defs.shared_training_config(
            max_epochs_per_iteration=_EPOCHS.value, max_steps_per_iteration=_MAX_STEPS.value,
            reward=_REWARD.value, reward_images=_REWARD_IMAGES.value,
            reward_splits=_REWARD_SPLITS.value, dynamic_reset=_DYN_RESET.value,
            reset_window=_RESET_WINDOW.value, reset_threshold=_RESET_THRESHOLD.value,
            log_every=_LOG_EVERY.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    from autogan_tf.search import summary as summary_lib
    verbose = flags.FLAGS["verbosity"].present
    result = search_lib.run_search(oracle_cfg, train_cfg, _RUN_DIR.value,
                                   overwrite=_OVERWRITE.value, strategy=flag_defs.make_strategy(),
                                   flags_text=flags.FLAGS.flags_into_string(),
                                   report=lambda line: print(line, flush=True),
                                   keras_tuner_verbose=1 if verbose else 0)
    print(summary_lib.format_summary(result, result["project_dir"]))
    print(json.dumps(result))


if __name__ == "__main__":
    runner.run(main, "search")
