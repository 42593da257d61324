"""The SN-GAN ResNet discriminator, growing with the search stage.

OptimizedBlock(3 -> df, down) -> Block(down) -> Block -> Block -> ReLU -> sum over H, W ->
Dense(1, no bias), spectral norm on every conv and the head (one power iteration per training
call). During search it grows with the generator: stage 0 uses blocks 1 and 4, stage 1 blocks
1, 2 and 4, stage 2 (and training) all four (SPEC section 3).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from autogan_tf.nn import layers as L

__all__ = ["DisBlock", "Discriminator"]

NUM_STAGES = 3


def _downsample(x):
    return tf.nn.avg_pool2d(x, 2, 2, "VALID")


@keras.saving.register_keras_serializable(package="autogan_tf")
class DisBlock(keras.layers.Layer):
    """A residual discriminator block.

    Args:
      channels: output (and hidden) channels.
      downsample: average-pool 2x2 at the end of both paths.
      optimized: the first block of SN-GAN (conv -> ReLU -> conv, no leading ReLU; the shortcut
        pools before its 1x1 conv).
    """

    def __init__(self, channels: int, downsample: bool = False, optimized: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.downsample = bool(downsample)
        self.optimized = bool(optimized)
        dt = self.dtype_policy
        self.c1 = L.SNConv2D(self.channels, 3, name="c1", dtype=dt)
        self.c2 = L.SNConv2D(self.channels, 3, name="c2", dtype=dt)
        self.c_sc = None

    def build(self, input_shape):
        cin = int(input_shape[-1])
        self.learnable_sc = self.optimized or self.downsample or cin != self.channels
        if self.learnable_sc:
            self.c_sc = L.SNConv2D(self.channels, 1, name="c_sc", dtype=self.dtype_policy)
            self.c_sc.build(input_shape)
        self.c1.build(input_shape)
        self.c2.build(tuple(input_shape[:-1]) + (self.channels,))

    def call(self, x, training=False):
        # c2's bias is added to the shortcut instead of to c2's output (the same sum: a bias
        # commutes with the average pool). Written as conv -> bias -> add, the block output
        # that the next block's ReLU reads and its shortcut also uses makes Grappler's remapper
        # fuse the add away while it still has a consumer; the pass then fails ("Mutation::
        # Apply error: fanout ... exist for missing node .../add") and drops every fusion of
        # the step. This way the pass succeeds (D step about 5% faster on CPU).
        #
        # Pooling after a conv is folded into it, in the cheaper order (the same function up
        # to float rounding): c2 + pool is one stride-2 4x4 conv (`L.conv3x3_avg_pool`, 2.25x
        # fewer multiply-adds), and the shortcut pools before its 1x1 conv (4x fewer), which
        # commutes with the pool.
        h = x if self.optimized else tf.nn.relu(x)
        h = self.c2(tf.nn.relu(self.c1(h, training=training)), training=training,
                    add_bias=False, avg_pool=self.downsample)
        if self.optimized or (self.learnable_sc and self.downsample and L.folding()):
            sc = self.c_sc(_downsample(x), training=training)
        elif self.learnable_sc:
            sc = self.c_sc(x, training=training)
            if self.downsample:
                sc = _downsample(sc)
        else:
            sc = x
        return h + tf.nn.bias_add(sc, tf.cast(self.c2.bias.value, sc.dtype))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(channels=self.channels, downsample=self.downsample, optimized=self.optimized)
        return cfg


@keras.saving.register_keras_serializable(package="autogan_tf")
class Discriminator(keras.Model):
    """Spectral-norm ResNet discriminator.

    Args:
      channels: df (64 in search, 128 for training a derived architecture).
      stage: 0, 1 or 2; 2 (all blocks) is the full discriminator used for training.
      input_resolution: only used to build the weights eagerly.

    Call: `discriminator(images, training=...)` -> float32 logits [N, 1].
    """

    def __init__(self, channels: int = 128, stage: int = NUM_STAGES - 1,
                 input_resolution: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.stage = int(stage)
        self.input_resolution = int(input_resolution)
        dt = self.dtype_policy
        self.block1 = DisBlock(self.channels, downsample=True, optimized=True, name="block1",
                               dtype=dt)
        self.block2 = DisBlock(self.channels, downsample=True, name="block2", dtype=dt)
        self.block3 = DisBlock(self.channels, name="block3", dtype=dt)
        self.block4 = DisBlock(self.channels, name="block4", dtype=dt)
        self.l5 = L.SNDense(1, use_bias=False, name="l5", dtype=dt)
        r, c = self.input_resolution, self.channels
        self.block1.build((None, r, r, 3))
        self.block2.build((None, r // 2, r // 2, c))
        for b in (self.block3, self.block4):
            b.build((None, r // 4, r // 4, c))
        self.l5.build((None, c))
        self.built = True

    def set_stage(self, stage: int) -> None:
        if not 0 <= stage < NUM_STAGES:
            raise ValueError(f"stage must be in [0, {NUM_STAGES - 1}], got {stage}")
        self.stage = int(stage)

    def call(self, x, training=False):
        h = self.block1(x, training=training)
        if self.stage >= 1:
            h = self.block2(h, training=training)
        if self.stage >= 2:
            h = self.block3(h, training=training)
        h = tf.nn.relu(self.block4(h, training=training))
        h = tf.reduce_sum(h, axis=[1, 2])
        return tf.cast(self.l5(h, training=training), tf.float32)

    def get_config(self):
        return {"channels": self.channels, "stage": self.stage,
                "input_resolution": self.input_resolution, "name": self.name,
                "dtype": keras.saving.serialize_keras_object(self.dtype_policy)}
