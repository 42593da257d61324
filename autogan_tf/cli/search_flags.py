"""absl flags of the architecture search (`python -m autogan_tf.search`), and their configs.

Defaults come from `OracleConfig` (the schedule and the controller) and `SharedTrainingConfig`
(shared-GAN training and rewards). To add a search flag: define it below with its config's
default and pass it on in `oracle_config` or `shared_training_config`.
"""

from __future__ import annotations

from absl import flags

from autogan_tf.cli import common
from autogan_tf.errors import ConfigError
from autogan_tf.search.oracle import OracleConfig
from autogan_tf.search.config import SharedTrainingConfig
from autogan_tf.training import precision

__all__ = ["oracle_config", "shared_training_config"]

_O, _S = OracleConfig, SharedTrainingConfig

# ----- the schedule and the controller (OracleConfig) --------------------------------------------
ITERS = flags.DEFINE_list("iterations_per_stage", [str(n) for n in _O.iterations_per_stage],
                          "Search iterations of stages 0, 1, 2.")
CTRL_STEPS = flags.DEFINE_integer("controller_steps", _O.controller_steps,
                                  "Controller steps per iteration.", lower_bound=1)
NUM_CANDIDATES = flags.DEFINE_integer("num_candidates", _O.num_candidates,
                                      "Architectures scored at each grow (M).", lower_bound=1)
TOP_K = flags.DEFINE_integer("top_k", _O.top_k, "Beam width (K).", lower_bound=1)
CTRL_LR = flags.DEFINE_float("ctrl_lr", _O.controller_lr, "Controller Adam learning rate.",
                             lower_bound=0.0)
ENTROPY = flags.DEFINE_float("entropy_coef", _O.entropy_coef,
                             "Entropy bonus (paper 1e-4, reference code 1e-3).")
BASELINE = flags.DEFINE_float("baseline_decay", _O.baseline_decay,
                              "Moving-average baseline decay.")
HIDDEN = flags.DEFINE_integer("hidden_size", _O.hidden_size, "Controller LSTM width.",
                              lower_bound=1)
CTRL_BATCH = flags.DEFINE_integer(
    "ctrl_batch", _O.controller_batch, "Architectures scored per REINFORCE update (reference: "
    "1); an iteration has controller_steps * ctrl_batch controller trials.", lower_bound=1)
CTRL_BETA1 = flags.DEFINE_float("ctrl_beta1", _O.controller_beta_1,
                                "Controller Adam beta_1 (reference: 0.0).", lower_bound=0.0,
                                upper_bound=1.0)
POLICY_EVAL = flags.DEFINE_integer(
    "policy_eval_archs", _O.policy_eval_archs, "Architectures drawn from the final policy and "
    "from the uniform policy at the end of each stage to compare their expected rewards "
    "(0: off).", lower_bound=0)

# ----- baselines and ablations (paper section 4.3) -----------------------------------------------
SAMPLER = flags.DEFINE_enum(
    "sampler", _O.sampler, ["controller", "uniform"], "Who draws architectures: the controller "
    "(AutoGAN) or a uniform draw of every token (random search with weight sharing: the same "
    "shared training and beam).")
WEIGHT_SHARING = flags.DEFINE_bool(
    "weight_sharing", _O.weight_sharing, "--noweight_sharing: random search without weight "
    "sharing: each iteration trains one uniformly drawn architecture from scratch for the "
    "iteration's D-step budget and scores it (needs --sampler=uniform).")
MLAS = flags.DEFINE_bool(
    "mlas", _O.mlas, "Multi-level search (grow cell by cell with a beam); --nomlas: single-level "
    "search, all 14 tokens from one controller at full size for all the iterations, no growing, "
    "no beam.")
REWARD = flags.DEFINE_enum(
    "reward", _S.reward, ["is", "fid"], "The controller's reward: Inception Score (paper) or FID "
    "against cached real statistics, as -ln(FID).")

# ----- shared-GAN training and rewards (SharedTrainingConfig) ------------------------------------
EPOCHS = flags.DEFINE_integer("shared_epochs", _S.max_epochs_per_iteration,
                              "Max epochs of shared training per iteration.", lower_bound=1)
MAX_STEPS = flags.DEFINE_integer("max_shared_steps", _S.max_steps_per_iteration,
                                 "Cap on D steps per iteration (0: none).", lower_bound=0)
REWARD_IMAGES = flags.DEFINE_integer("reward_images", _S.reward_images,
                                     "Images per child reward.", lower_bound=1)
REWARD_SPLITS = flags.DEFINE_integer("reward_splits", _S.reward_splits,
                                     "IS splits of a reward.", lower_bound=1)
DYN_RESET = flags.DEFINE_bool("dynamic_reset", _S.dynamic_reset,
                              "Dynamic resetting of the shared GAN.")
RESET_WINDOW = flags.DEFINE_integer("reset_window", _S.reset_window,
                                    "Loss window of dynamic reset.", lower_bound=1)
RESET_THRESHOLD = flags.DEFINE_float("reset_threshold", _S.reset_threshold,
                                     "Variance threshold of dynamic reset.", lower_bound=0.0)


def oracle_config() -> OracleConfig:
    """The `OracleConfig` of the flags.

    Raises:
      ConfigError: values that do not fit together (e.g. top_k > num_candidates).
    """
    try:
        iters = tuple(int(v) for v in ITERS.value)
    except ValueError as e:
        raise ConfigError(f"--iterations_per_stage takes integers: {ITERS.value}") from e
    return OracleConfig(
        iterations_per_stage=iters, controller_steps=CTRL_STEPS.value,
        controller_batch=CTRL_BATCH.value, num_candidates=NUM_CANDIDATES.value, top_k=TOP_K.value,
        controller_lr=CTRL_LR.value, controller_beta_1=CTRL_BETA1.value,
        entropy_coef=ENTROPY.value, baseline_decay=BASELINE.value, hidden_size=HIDDEN.value,
        sampler=SAMPLER.value, mlas=MLAS.value, weight_sharing=WEIGHT_SHARING.value,
        policy_eval_archs=POLICY_EVAL.value, seed=common.SEED.value)


def shared_training_config() -> SharedTrainingConfig:
    """The `SharedTrainingConfig` of the flags."""
    return SharedTrainingConfig(
        gan=common.gan_config(SharedTrainingConfig.gan, workload=precision.SUPERNET),
        max_epochs_per_iteration=EPOCHS.value, max_steps_per_iteration=MAX_STEPS.value,
        reward=REWARD.value, reward_images=REWARD_IMAGES.value,
        reward_splits=REWARD_SPLITS.value,
        dynamic_reset=DYN_RESET.value, reset_window=RESET_WINDOW.value,
        reset_threshold=RESET_THRESHOLD.value, **common.common_fields(SharedTrainingConfig))
