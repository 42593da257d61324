"""Generators: the weight-shared supernet of the search and the generator of one architecture.

Both are z (N(0, 1)) -> Dense(bw*bw*channels) -> reshape -> three cells -> `ToRGB` (SPEC
section 2). `SharedGenerator` holds `SearchCell`s and takes the architecture as an integer
tensor, so one traced training step serves every architecture of a stage; `DerivedGenerator`
holds `DerivedCell`s of one fixed architecture. The cells and their op table live in
`nn/cells.py` (re-exported here, with `count_trainable_params`, for existing importers);
`inherit_supernet_weights` copies a path of the supernet into a derived generator.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from autogan_tf import search_space as ss
from autogan_tf.errors import ConfigError
from autogan_tf.nn import layers as L
from autogan_tf.nn.cells import (DerivedCell, SearchCell, copy_layer_weights,
                                 inherit_cell_weights)
from autogan_tf.nn.stats import count_trainable_params

__all__ = [
    "SearchCell",
    "DerivedCell",
    "ToRGB",
    "SharedGenerator",
    "DerivedGenerator",
    "count_trainable_params",
    "inherit_supernet_weights",
]


@keras.saving.register_keras_serializable(package="autogan_tf")
class ToRGB(keras.layers.Layer):
    """BN -> ReLU -> conv3x3 to 3 channels -> tanh; outputs float32 images in [-1, 1]."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bn = L.batch_norm("bn", self.dtype_policy)
        self.conv = L.conv2d(3, "conv", self.dtype_policy)

    def build(self, input_shape):
        self.bn.build(input_shape)
        self.conv.build(input_shape)

    def call(self, x, training=False):
        h = self.conv(tf.nn.relu(L.apply_batch_norm(self.bn, x, training)))
        return tf.cast(tf.tanh(tf.cast(h, tf.float32)), tf.float32)


class _GeneratorBase(keras.Model):
    """z (N(0, 1)) -> Dense(bw*bw*channels) -> reshape -> cells -> to_rgb."""

    def __init__(self, latent_dim: int = 128, channels: int = 128, bottom_width: int = 4,
                 **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)
        self.channels = int(channels)
        self.bottom_width = int(bottom_width)
        self.l1 = keras.layers.Dense(
            self.bottom_width ** 2 * self.channels, name="l1", dtype=self.dtype_policy,
            kernel_initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"))
        self.to_rgb = ToRGB(name="to_rgb", dtype=self.dtype_policy)

    def _build_weights(self):
        """Creates every weight eagerly (cells double the resolution in turn)."""
        self.l1.build((None, self.latent_dim))
        res = self.bottom_width
        for cell in self.cells:
            cell.build((None, res, res, self.channels))
            res *= 2
        self.to_rgb.build((None, res, res, self.channels))
        self.built = True

    def _project(self, z):
        h = self.l1(z)
        return tf.reshape(h, [-1, self.bottom_width, self.bottom_width, self.channels])

    def resolution(self, num_cells: int = ss.NUM_CELLS) -> int:
        return self.bottom_width * 2 ** num_cells

    def get_config(self):
        return {"latent_dim": self.latent_dim, "channels": self.channels,
                "bottom_width": self.bottom_width, "name": self.name,
                "dtype": keras.saving.serialize_keras_object(self.dtype_policy)}


@keras.saving.register_keras_serializable(package="autogan_tf")
class SharedGenerator(_GeneratorBase):
    """The weight-shared generator (supernet) of the search.

    `stage` (0, 1, 2) is how many cells beyond the first are grown; it is Python state, so a
    stage is one trace. The architecture is an int32 tensor [14] (cells not yet grown are
    ignored), chosen inside the graph.

    Call: `generator(z, arch, training=...)` -> float32 images [N, R, R, 3] in [-1, 1]. In
    training inside a replica function of a `tf.distribute` strategy, every replica runs the
    architecture of replica 0 and batch norm uses the global batch's statistics.
    """

    def __init__(self, latent_dim: int = 128, channels: int = 128, bottom_width: int = 4,
                 stage: int = ss.NUM_CELLS - 1, **kwargs):
        super().__init__(latent_dim, channels, bottom_width, **kwargs)
        self.stage = int(stage)
        self.cells = [SearchCell(self.channels, c, name=f"cell{c}", dtype=self.dtype_policy)
                      for c in range(ss.NUM_CELLS)]
        L.track_for_checkpoint(self, "ckpt_cell", self.cells)
        self._build_weights()

    def set_stage(self, stage: int) -> None:
        if not 0 <= stage < ss.NUM_CELLS:
            raise ConfigError(f"stage must be in [0, {ss.NUM_CELLS - 1}], got {stage}")
        self.stage = int(stage)

    @property
    def output_resolution(self) -> int:
        return self.resolution(self.stage + 1)

    def call(self, z, arch, training=False):
        arch = tf.cast(arch, tf.int32)
        if L.batch_norm_needs_sync(training):
            arch = L.from_first_replica(arch)  # one path on every replica
        h = self._project(z)
        skips = []
        for c in range(self.stage + 1):
            sl = ss.stage_slice(c)
            choice = arch[sl.start:sl.stop]
            if c == 0:
                choice = tf.concat([choice, tf.zeros([1], tf.int32)], 0)
            skip_out, h = self.cells[c](h, skips=tuple(skips), choice=choice, training=training)
            skips.append(skip_out)
        return self.to_rgb(h, training=training)

    def get_config(self):
        cfg = super().get_config()
        cfg["stage"] = self.stage
        return cfg


@keras.saving.register_keras_serializable(package="autogan_tf")
class DerivedGenerator(_GeneratorBase):
    """The generator of one discovered architecture, holding only its chosen ops.

    Args:
      arch: an `Architecture`, a name, a string of 14 integers or a list.
      latent_dim, channels, bottom_width: 128, 256, 4 for CIFAR-10 (6 for STL-10 at 48 px).

    Call: `generator(z, training=...)` -> float32 images [N, R, R, 3] in [-1, 1].
    """

    def __init__(self, arch, latent_dim: int = 128, channels: int = 256, bottom_width: int = 4,
                 **kwargs):
        super().__init__(latent_dim, channels, bottom_width, **kwargs)
        self.arch = ss.Architecture.parse(arch)
        self.cells = [
            DerivedCell(self.channels, c, self.arch.tokens[ss.stage_slice(c)], name=f"cell{c}",
                        dtype=self.dtype_policy)
            for c in range(ss.NUM_CELLS)]
        L.track_for_checkpoint(self, "ckpt_cell", self.cells)
        self._build_weights()

    @property
    def output_resolution(self) -> int:
        return self.resolution()

    def call(self, z, training=False):
        h = self._project(z)
        skips = []
        for cell in self.cells:
            skip_out, h = cell(h, skips=tuple(skips), training=training)
            skips.append(skip_out)
        return self.to_rgb(h, training=training)

    def get_config(self):
        cfg = super().get_config()
        cfg["arch"] = list(self.arch.tokens)
        return cfg


def inherit_supernet_weights(shared: SharedGenerator, derived: DerivedGenerator) -> None:
    """Copies the weights of `derived`'s path through the supernet into `derived`.

    Afterwards both generators compute the same function for `derived.arch` (tested), which
    is how a child is scored and how a derived architecture can start from shared weights.
    Each cell's layers are matched by the role keys of `cells.path_roles`.

    Raises:
      ConfigError: if the generators differ in channels, bottom width or latent size.
    """
    if (shared.channels, shared.bottom_width, shared.latent_dim) != (
            derived.channels, derived.bottom_width, derived.latent_dim):
        raise ConfigError(
            f"supernet and derived generator differ in channels, bottom width or latent size: "
            f"{(shared.channels, shared.bottom_width, shared.latent_dim)} vs "
            f"{(derived.channels, derived.bottom_width, derived.latent_dim)}; build the derived "
            f"generator with the supernet's sizes")
    copy_layer_weights(shared.l1, derived.l1)
    copy_layer_weights(shared.to_rgb, derived.to_rgb)
    for sc, dc in zip(shared.cells, derived.cells):
        inherit_cell_weights(sc, dc)
