"""absl flags shared by the `search`, `train` and `derive` binaries, and their conversion to configs.

Every flag that sets a config field takes its default from that config dataclass (`GANConfig`,
`TrainConfig`, `SharedTrainingConfig`), so the dataclasses hold the only defaults; a flag whose
default depends on the binary is None ("the config's default"). Only binaries import this
module; the libraries take the typed configs it builds.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Optional

from absl import app, flags
from absl import logging as absl_logging

from autogan_tf import data as data_lib
from autogan_tf.cli import model_flags
from autogan_tf.errors import ConfigError
from autogan_tf.search.config import SharedTrainingConfig
from autogan_tf.training import distribute
from autogan_tf.training import precision as precision_lib
from autogan_tf.training.gan import GANConfig
from autogan_tf.training.train_lib import ON_NONFINITE, TrainConfig

__all__ = ["DATASET", "DATA_DIR", "D_BATCH", "G_BATCH", "N_CRITIC", "G_LR", "D_LR", "BETA1",
           "BETA2", "CLASSIFIER", "CACHE_DIR", "PRECISION", "MIXED", "XLA", "SEED", "STRATEGY",
           "NUM_CPU_REPLICAS", "PROGRESS", "LOG_EVERY", "DETERMINISTIC", "MALLOC",
           "ON_NONFINITE_FLAG", "OVERWRITE", "define_run_dir", "define_xla_flag", "setup",
           "quiet_info_logs", "enable_determinism", "find_jemalloc", "malloc_restart_env",
           "requested_precision", "compute_choice", "gan_config", "default_bottom_width",
           "default_classifier", "model_sizes", "make_strategy", "task_run_dir"]

assert TrainConfig.dataset == SharedTrainingConfig.dataset
assert TrainConfig.seed == SharedTrainingConfig.seed
assert TrainConfig.log_every == SharedTrainingConfig.log_every
assert TrainConfig.on_nonfinite == SharedTrainingConfig.on_nonfinite

DATASET = flags.DEFINE_string(
    "dataset", TrainConfig.dataset, "cifar10, stl10, digits (embedded, offline), an image folder "
    "or an .npz of uint8 images.")
DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
D_BATCH = flags.DEFINE_integer("d_batch_size", GANConfig.d_batch_size, "Discriminator batch.",
                               lower_bound=1)
G_BATCH = flags.DEFINE_integer("g_batch_size", GANConfig.g_batch_size, "Generator batch.",
                               lower_bound=1)
N_CRITIC = flags.DEFINE_integer("n_critic", GANConfig.n_critic, "D steps per G step.",
                                lower_bound=1)
G_LR = flags.DEFINE_float("g_lr", GANConfig.g_lr, "Generator Adam learning rate.",
                          lower_bound=0.0)
D_LR = flags.DEFINE_float("d_lr", GANConfig.d_lr, "Discriminator Adam learning rate.",
                          lower_bound=0.0)
BETA1 = flags.DEFINE_float("beta1", GANConfig.beta_1, "Adam beta_1.", lower_bound=0.0,
                           upper_bound=1.0)
BETA2 = flags.DEFINE_float("beta2", GANConfig.beta_2, "Adam beta_2.", lower_bound=0.0,
                           upper_bound=1.0)
CLASSIFIER = flags.DEFINE_string(
    "classifier", None, "'inception' (TF-Hub), 'digits' or a local SavedModel path; default: "
    "digits for the digits dataset, else inception.")
CACHE_DIR = flags.DEFINE_string(
    "cache_dir", None, "Cache for the digits classifier and real statistics (default "
    "$AUTOGAN_TF_CACHE or ~/.cache/autogan_tf).")
PRECISION = flags.DEFINE_enum(
    "precision", "auto", list(precision_lib.PRECISIONS), "Numeric precision of the GAN: 'bf16' "
    "builds it with mixed_bfloat16 (float32 weights); 'auto' picks bf16 on GPUs with bf16 tensor "
    "cores and on CPUs with avx512_bf16 or amx_bf16, else fp32, and logs what it chose and why.")
MIXED = flags.DEFINE_bool(
    "mixed_precision", None, "Alias: --mixed_precision is --precision=bf16, --nomixed_precision "
    "is --precision=fp32 (overrides --precision=auto).")


class _XlaParser(flags.ArgumentParser):
    """auto|on|off, and the boolean spellings (so --xla and --noxla keep working)."""

    syntactic_help = "auto|on|off"

    def parse(self, argument):
        try:
            return precision_lib.parse_xla(argument)
        except ValueError as e:
            raise ValueError(str(e)) from None

    def flag_type(self):
        return "auto|on|off"


class _XlaFlag(flags.Flag):
    """A three-valued flag that also takes the boolean forms --xla and --noxla."""

    def _serialize(self, value):
        return "" if value is None else f"--{self.name}={value}"


def define_xla_flag(flag_values=flags.FLAGS):
    """Defines `--xla` (auto|on|off; --xla and --noxla too) in `flag_values`."""
    return flags.DEFINE_flag(_XlaFlag(
        _XlaParser(), flags.ArgumentSerializer(), "xla", "auto",
        "XLA-compile the GAN steps: on (--xla), off (--noxla), or auto: on for a derived "
        "architecture's steps on GPU, off for the supernet's steps and on CPUs (see "
        "--precision); the choice is logged.", boolean=True), flag_values)


XLA = define_xla_flag()
SEED = flags.DEFINE_integer("seed", TrainConfig.seed, "Seeds everything random.", lower_bound=0)
STRATEGY = flags.DEFINE_enum(
    "strategy", "default", ["default", "mirrored", "multi_worker"], "Data parallelism of the GAN "
    "steps: one device; 'mirrored' (all local GPUs, or --num_cpu_replicas); 'multi_worker' (the "
    "tasks of TF_CONFIG, every task runs the same command). The batch flags are global batches, "
    "split across replicas.")
NUM_CPU_REPLICAS = flags.DEFINE_integer(
    "num_cpu_replicas", 0, "With --strategy=mirrored on a host without GPUs: split the CPU into "
    "this many logical devices, one replica each (0: one replica).", lower_bound=0)
PROGRESS = flags.DEFINE_bool("progress", TrainConfig.progress, "Show progress bars.")
LOG_EVERY = flags.DEFINE_integer("log_every", TrainConfig.log_every, "Steps between TensorBoard "
                                 "loss scalars (generator iterations in training, D steps in "
                                 "search).", lower_bound=1)
DETERMINISTIC = flags.DEFINE_bool(
    "deterministic", False, "Bit-identical results for the same seed on CPU: deterministic ops, "
    "one thread per op and oneDNN off (slower; see the README).")
MALLOC = flags.DEFINE_enum(
    "malloc", "auto", ["auto", "jemalloc", "system"],
    "Host memory allocator. 'auto': restart the process with jemalloc preloaded when "
    "libjemalloc.so.2 is installed (CPU steps 5-14% faster on an AVX2 CPU; see the README), "
    "else keep the system's malloc; 'jemalloc': require it; 'system': never preload. "
    "$AUTOGAN_TF_JEMALLOC names the library if it is not in the loader's cache.")
ON_NONFINITE_FLAG = flags.DEFINE_enum(
    "on_nonfinite", TrainConfig.on_nonfinite, list(ON_NONFINITE),
    "When losses or weights turn NaN/Inf: 'restore' the last good checkpoint and go on (the run "
    "stops after 3 restores without a new good checkpoint), or 'stop' at once.")
OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Start afresh: after every check has passed, move the run's previous "
    "state to <dir>.replaced-<time> (nothing is deleted) instead of resuming it.")


def define_run_dir(default: str, help_text: str = "Run directory."):
    """The binary's `--run_dir` flag (its default depends on the binary)."""
    return flags.DEFINE_string("run_dir", default, help_text)


# ----- process setup -------------------------------------------------------------------------
class _ProjectInfoOnly(logging.Filter):
    """Passes warnings and errors, and INFO records only from the project's own modules."""

    _MARK = f"{os.sep}autogan_tf{os.sep}"

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or self._MARK in (record.pathname or "")


def quiet_info_logs() -> None:
    """TensorFlow logs every checkpoint write at INFO (through absl and its own logger): show
    its warnings only, unless the user passed `--verbosity`. The project's own INFO lines
    (progress, resumes, restores) stay."""
    if not flags.FLAGS["verbosity"].present:
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
        handler = absl_logging.get_absl_handler()
        if not any(isinstance(f, _ProjectInfoOnly) for f in handler.filters):
            handler.addFilter(_ProjectInfoOnly())


JEMALLOC_CONF = "retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1"
"""jemalloc settings (keep freed pages for reuse), as the PyTorch anchor in ../shared/bench."""


def find_jemalloc(environ=None) -> Optional[str]:
    """Path of libjemalloc.so.2: $AUTOGAN_TF_JEMALLOC if set (even if missing, so that an
    error can name it), else the loader's cache (`ldconfig -p`), else None."""
    environ = os.environ if environ is None else environ
    if environ.get("AUTOGAN_TF_JEMALLOC"):
        return environ["AUTOGAN_TF_JEMALLOC"]
    import subprocess  # pylint: disable=import-outside-toplevel
    for ldconfig in ("ldconfig", "/sbin/ldconfig"):
        try:
            out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True,
                                 timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            if line.strip().startswith("libjemalloc.so.2") and "=>" in line:
                return line.split("=>")[-1].strip()
    return None


def malloc_restart_env(choice: str, environ=None, find=find_jemalloc) -> tuple:
    """(environment changes to restart with, a line saying what was chosen and why).

    Empty changes: keep this process (jemalloc already preloaded, 'system', or none found).

    Raises:
      app.UsageError: `choice` is 'jemalloc' and no library is found at the path looked at.
    """
    environ = os.environ if environ is None else environ
    preload = environ.get("LD_PRELOAD", "")
    if "jemalloc" in preload:
        return {}, f"malloc: jemalloc (preloaded: {preload})"
    if choice == "system" or not sys.platform.startswith("linux"):
        return {}, f"malloc: the system's (--malloc={choice})"
    lib = find(environ)
    if lib is None or not os.path.isfile(lib):
        if choice == "jemalloc":
            where = (f"$AUTOGAN_TF_JEMALLOC={lib} does not exist" if lib else
                     "libjemalloc.so.2 is not in the loader's cache (ldconfig -p)")
            raise app.UsageError(f"--malloc=jemalloc: {where}. Install it (Debian/Ubuntu: "
                                 "apt-get install libjemalloc2), set AUTOGAN_TF_JEMALLOC to "
                                 "the library, or pass --malloc=system")
        return {}, ("malloc: the system's (--malloc=auto found no libjemalloc.so.2; "
                    "installing libjemalloc2 makes CPU steps faster, see the README)")
    changes = {"LD_PRELOAD": ":".join(x for x in (lib, preload) if x)}
    if not environ.get("MALLOC_CONF"):
        changes["MALLOC_CONF"] = JEMALLOC_CONF
    return changes, f"malloc: restarting with jemalloc preloaded ({lib}, --malloc={choice})"


def _restart(changes: dict) -> None:
    """Starts this process again with the same command line and `changes` in its environment."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, dict(os.environ, **changes))


def enable_determinism() -> None:
    """Makes TensorFlow's CPU results bit-identical from run to run, at a cost in speed.

    Deterministic op implementations (`enable_op_determinism`) alone do not suffice on CPU:
    multi-threaded kernels sum partial results in an order that depends on thread timing, and
    oneDNN's kernels vary from run to run even on one thread. So every op runs on one thread and
    oneDNN is turned off. TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported:
    unless it is already "0", the process starts itself again with it set (same command line).
    Call before TensorFlow runs its first op.
    """
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0":
        absl_logging.info("--deterministic: restarting with TF_ENABLE_ONEDNN_OPTS=0")
        _restart({"TF_ENABLE_ONEDNN_OPTS": "0"})
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as e:
        raise app.UsageError("--deterministic must take effect before TensorFlow starts: "
                             f"{e}") from e


def setup() -> None:
    """What the training and search binaries do first: quiet logs, the allocator (one restart
    at most, before any TensorFlow op runs), determinism if asked."""
    quiet_info_logs()
    changes, line = malloc_restart_env(MALLOC.value)
    absl_logging.info(line)
    if changes:
        if DETERMINISTIC.value:
            changes["TF_ENABLE_ONEDNN_OPTS"] = "0"
        _restart(changes)
    if DETERMINISTIC.value:
        enable_determinism()


# ----- flags -> configs ------------------------------------------------------------------------
def requested_precision() -> str:
    """--precision, with --mixed_precision/--nomixed_precision as its alias.

    Raises:
      app.UsageError: --mixed_precision contradicts an explicit --precision.
    """
    precision = PRECISION.value
    if MIXED.value is None:
        return precision
    alias = "bf16" if MIXED.value else "fp32"
    if precision not in ("auto", alias):
        raise app.UsageError(f"--{'' if MIXED.value else 'no'}mixed_precision contradicts "
                             f"--precision={precision}; pass one of them")
    return alias


_CHOICES: dict = {}


def compute_choice(workload: str) -> precision_lib.ComputeChoice:
    """The precision and XLA choice of the flags for `workload` (SUPERNET or DERIVED), resolved
    on this machine and logged once per process and flag values."""
    key = (requested_precision(), precision_lib.parse_xla(XLA.value), workload)
    if key not in _CHOICES:
        _CHOICES[key] = precision_lib.resolve(*key, distributed=STRATEGY.value != "default")
        what = "search (supernet steps)" if workload == precision_lib.SUPERNET else (
            "training (derived architecture steps)")
        precision_lib.log_choice(_CHOICES[key], what)
    return _CHOICES[key]


def _workload(config_cls) -> str:
    return precision_lib.SUPERNET if config_cls is SharedTrainingConfig else precision_lib.DERIVED


def gan_config(base: GANConfig, ema_decay: Optional[float] = None,
               workload: str = precision_lib.DERIVED) -> GANConfig:
    """`base` (the binary's config default) with the GAN flags applied.

    Args:
      base: the GAN config of the binary's default config (`TrainConfig().gan` or
        `SharedTrainingConfig().gan`).
      ema_decay: the EMA decay flag's value; None keeps `base.ema_decay`.
      workload: `precision.SUPERNET` (search) or `precision.DERIVED` (training): what
        --xla=auto decides for.
    """
    return dataclasses.replace(
        base, latent_dim=model_flags.LATENT_DIM.value, g_batch_size=G_BATCH.value,
        d_batch_size=D_BATCH.value, n_critic=N_CRITIC.value, g_lr=G_LR.value, d_lr=D_LR.value,
        beta_1=BETA1.value, beta_2=BETA2.value,
        ema_decay=base.ema_decay if ema_decay is None else ema_decay,
        jit_compile=compute_choice(workload).xla)


def default_bottom_width(dataset: str) -> Optional[int]:
    """The bottom width that gives `dataset`'s default resolution (None if unknown)."""
    try:
        return max(1, data_lib.default_resolution(dataset) // 8)
    except data_lib.DatasetError:
        return None  # reported by the early dataset check


def model_sizes(config_cls) -> tuple:
    """(bottom_width, gf, df) from the flags; unset: the dataset's and `config_cls`'s."""
    return model_flags.sizes(config_cls, default_bottom_width(DATASET.value))


def default_classifier() -> str:
    """--classifier, else 'digits' for the digits dataset and the configs' default otherwise."""
    return CLASSIFIER.value or ("digits" if DATASET.value == "digits" else TrainConfig.classifier)


def common_fields(config_cls) -> dict:
    """The config fields that `search` and `train` set from the same flags."""
    bw, gf, df = model_sizes(config_cls)
    return dict(dataset=DATASET.value, data_dir=DATA_DIR.value, bottom_width=bw, gf=gf, df=df,
                classifier=default_classifier(), cache_dir=CACHE_DIR.value,
                mixed_precision=compute_choice(_workload(config_cls)).mixed_precision,
                seed=SEED.value, log_every=LOG_EVERY.value,
                progress=PROGRESS.value, on_nonfinite=ON_NONFINITE_FLAG.value)


def make_strategy():
    """The tf.distribute strategy chosen by --strategy and --num_cpu_replicas (None for the
    default). Call it before anything else runs TensorFlow (see `training.distribute`).

    Raises:
      app.UsageError: --num_cpu_replicas without --strategy=mirrored, or too late to split
        the CPU.
    """
    try:
        return distribute.make_strategy(STRATEGY.value, NUM_CPU_REPLICAS.value)
    except ConfigError as e:
        raise app.UsageError(str(e)) from e


def task_run_dir(run_dir: str, strategy) -> str:
    """--run_dir on the chief; a directory of its own on every other multi-worker task."""
    return distribute.task_dir(run_dir, strategy)
