"""absl flags shared by the `search` and `train` binaries, and their conversion to configs.

Only binaries import this module; the library takes the typed configs it builds.
"""

from __future__ import annotations

from typing import Optional

from absl import flags
from absl import logging as absl_logging

__all__ = ["quiet_info_logs", "SEED", "shared_training_config", "gan_config", "make_strategy", "model_sizes"]

DATASET = flags.DEFINE_string("dataset", "digits", "cifar10, stl10, digits (embedded, offline), "
                              "an image folder or an .npz of uint8 images.")
DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
BOTTOM_WIDTH = flags.DEFINE_integer("bottom_width", None, "Generator bottom width (4: 32 px, "
                                    "6: 48 px, 2: 16 px); default from the dataset.",
                                    lower_bound=1)
GF = flags.DEFINE_integer("gf_dim", None, "Generator channels (default 128 in search, 256 in "
                          "training).", lower_bound=1)
DF = flags.DEFINE_integer("df_dim", None, "Discriminator channels (default 64 in search, 128 in "
                          "training).", lower_bound=1)
LATENT = flags.DEFINE_integer("latent_dim", 128, "Latent size.", lower_bound=1)
D_BATCH = flags.DEFINE_integer("d_batch_size", 64, "Discriminator batch.", lower_bound=1)
G_BATCH = flags.DEFINE_integer("g_batch_size", 128, "Generator batch.", lower_bound=1)
N_CRITIC = flags.DEFINE_integer("n_critic", 5, "D steps per G step.", lower_bound=1)
G_LR = flags.DEFINE_float("g_lr", 2e-4, "Generator Adam learning rate.", lower_bound=0.0)
D_LR = flags.DEFINE_float("d_lr", 2e-4, "Discriminator Adam learning rate.", lower_bound=0.0)
BETA1 = flags.DEFINE_float("beta1", 0.0, "Adam beta_1.", lower_bound=0.0, upper_bound=1.0)
BETA2 = flags.DEFINE_float("beta2", 0.9, "Adam beta_2.", lower_bound=0.0, upper_bound=1.0)
CLASSIFIER = flags.DEFINE_string("classifier", None, "'inception' (TF-Hub), 'digits' or a local "
                                 "SavedModel path; default: digits for the digits dataset, else "
                                 "inception.")
CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Cache for the digits classifier and real "
                                "statistics (default $AUTOGAN_TF_CACHE or ~/.cache/autogan_tf).")
MIXED = flags.DEFINE_bool("mixed_precision", False, "Build the GAN with mixed_bfloat16.")
XLA = flags.DEFINE_bool("xla", False, "jit_compile the training steps.")
SEED = flags.DEFINE_integer("seed", 0, "Seeds everything random.", lower_bound=0)
STRATEGY = flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                             "tf.distribute strategy of the GAN steps.")
NUM_CPU_REPLICAS = flags.DEFINE_integer("num_cpu_replicas", 0, "With --strategy=mirrored and no "
                                        "GPU: split the CPU into this many logical devices.",
                                        lower_bound=0)
PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars.")


def quiet_info_logs() -> None:
    """TensorFlow logs every checkpoint write at INFO; show warnings only, unless the user
    passed `--verbosity`."""
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)


def default_bottom_width(dataset: str) -> int:
    from autogan_tf import data as data_lib
    try:
        return max(1, data_lib.default_resolution(dataset) // 8)
    except data_lib.DatasetError:
        return 4


def model_sizes(search: bool) -> tuple:
    """(bottom_width, gf, df) from the flags and the binary's defaults."""
    bw = BOTTOM_WIDTH.value or default_bottom_width(DATASET.value)
    gf = GF.value or (128 if search else 256)
    df = DF.value or (64 if search else 128)
    return bw, gf, df


def default_classifier() -> str:
    return CLASSIFIER.value or ("digits" if DATASET.value == "digits" else "inception")


def gan_config(ema_decay: Optional[float] = None):
    from autogan_tf.training.gan import GANConfig
    if MIXED.value and not XLA.value:
        import tensorflow as tf
        if not tf.config.list_physical_devices("GPU"):
            absl_logging.warning(
                "--mixed_precision on a CPU without --xla: TensorFlow has no fast CPU kernel "
                "for bf16 convolution gradients, so steps can be ten times slower than fp32; "
                "add --xla")
    return GANConfig(latent_dim=LATENT.value, g_batch_size=G_BATCH.value,
                     d_batch_size=D_BATCH.value, n_critic=N_CRITIC.value, g_lr=G_LR.value,
                     d_lr=D_LR.value, beta_1=BETA1.value, beta_2=BETA2.value,
                     ema_decay=ema_decay, jit_compile=XLA.value)


def shared_training_config(**overrides):
    from autogan_tf.search.tuner import SharedTrainingConfig
    bw, gf, df = model_sizes(search=True)
    return SharedTrainingConfig(
        dataset=DATASET.value, data_dir=DATA_DIR.value, bottom_width=bw, gf=gf, df=df,
        gan=gan_config(), classifier=default_classifier(), cache_dir=CACHE_DIR.value,
        mixed_precision=MIXED.value, seed=SEED.value, progress=PROGRESS.value, **overrides)


def make_strategy():
    """The tf.distribute strategy chosen by --strategy (None for the default)."""
    import tensorflow as tf
    if STRATEGY.value == "default":
        return None
    if STRATEGY.value == "mirrored":
        if NUM_CPU_REPLICAS.value and not tf.config.list_physical_devices("GPU"):
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_CPU_REPLICAS.value)
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            return tf.distribute.MirroredStrategy(devices)
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy()
