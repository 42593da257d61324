"""Primitive Keras layers and ops shared by the generators and the discriminator.

Spectrally normalised convolution and dense layers (one power iteration per training call, as
SN-GAN), instance normalisation without affine parameters, nearest and bilinear resizing, the
stride-2 deconvolution, and the initialisers that match the reference implementation. Which of
these a generator cell may choose is the op table's business (`nn/cells.py`).
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = [
    "SNConv2D",
    "SNDense",
    "instance_norm",
    "resize_nearest",
    "resize_bilinear",
    "conv_initializer",
    "bias_initializer",
    "batch_norm",
    "conv2d",
    "conv1x1",
    "deconv2x2",
    "track_for_checkpoint",
]

def conv_initializer(seed=None):
    """Xavier-uniform (gain 1), the reference's `init_type=xavier_uniform`."""
    return keras.initializers.GlorotUniform(seed=seed)


def bias_initializer():
    return keras.initializers.Zeros()


def batch_norm(name: str, dtype=None) -> keras.layers.BatchNormalization:
    """Batch norm with PyTorch's defaults (momentum 0.1 there = 0.9 here, eps 1e-5).

    The scale starts at N(1, 0.02) as in the reference's `weights_init`. Built inside a
    `tf.distribute` strategy's scope, it synchronises batch statistics across replicas, so a
    data-parallel step normalises with the statistics of the global batch.
    """
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02),
        synchronized=tf.distribute.has_strategy(), name=name, dtype=dtype)


def conv2d(filters: int, name: str, dtype=None, kernel_size: int = 3) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters, kernel_size, padding="same", kernel_initializer=conv_initializer(),
        bias_initializer=bias_initializer(), name=name, dtype=dtype)


def conv1x1(filters: int, name: str, dtype=None) -> keras.layers.Conv2D:
    return conv2d(filters, name, dtype, kernel_size=1)


def deconv2x2(filters: int, name: str, dtype=None) -> keras.layers.Conv2DTranspose:
    """The search space's stride-2 deconvolution (2x2 kernel)."""
    return keras.layers.Conv2DTranspose(
        filters, 2, strides=2, padding="valid", kernel_initializer=conv_initializer(),
        bias_initializer=bias_initializer(), name=name, dtype=dtype)


def track_for_checkpoint(owner, name: str, layers) -> None:
    """Gives each layer of a (nested) list an attribute of its own on `owner`.

    Keras tracks layers held in lists for its own weight lists, but `tf.train.Checkpoint` only
    follows attributes; without this, the weights of listed layers would be left out of
    checkpoints.
    """
    for i, item in enumerate(layers):
        if isinstance(item, (list, tuple)):
            track_for_checkpoint(owner, f"{name}_{i}", item)
        else:
            setattr(owner, f"{name}_{i}", item)


def instance_norm(x: tf.Tensor, epsilon: float = 1e-5) -> tf.Tensor:
    """Instance normalisation without affine parameters (PyTorch `InstanceNorm2d` default)."""
    xf = tf.cast(x, tf.float32)
    mean, var = tf.nn.moments(xf, axes=[1, 2], keepdims=True)
    return tf.cast((xf - mean) * tf.math.rsqrt(var + epsilon), x.dtype)


def resize_nearest(x: tf.Tensor, size) -> tf.Tensor:
    """Nearest-neighbour resize of NHWC `x` (static spatial size) to `size` = (h, w)."""
    h, w = int(size[0]), int(size[1])
    in_h, in_w = int(x.shape[1]), int(x.shape[2])
    if h % in_h == 0 and w % in_w == 0:
        # Integer factor: a broadcast is cheaper than the resize kernel and exact.
        fh, fw = h // in_h, w // in_w
        c = x.shape[-1]
        y = tf.reshape(x, [-1, in_h, 1, in_w, 1, c])
        y = tf.broadcast_to(y, [tf.shape(x)[0], in_h, fh, in_w, fw, c])
        return tf.reshape(y, [-1, h, w, c])
    return tf.image.resize(x, [h, w], method="nearest")


def resize_bilinear(x: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize with half-pixel centres (= PyTorch `align_corners=False`)."""
    # Resize in float32 (the kernel's output type) so the gradient keeps one precision.
    y = tf.image.resize(tf.cast(x, tf.float32), [int(size[0]), int(size[1])], method="bilinear")
    return tf.cast(y, x.dtype)


def _l2_normalize(v, eps=1e-12):
    return v / (tf.norm(v) + eps)


class _SpectralNorm:
    """Mixin: a weight matrix view, a persistent `u` vector and one power iteration."""

    def _build_u(self, out_dim: int):
        self.u = self.add_weight(
            name="sn_u", shape=(1, out_dim), trainable=False,
            initializer=keras.initializers.RandomNormal(0.0, 1.0), dtype="float32")

    def _normalized_kernel(self, training):
        kernel = self.kernel.value if hasattr(self.kernel, "value") else self.kernel
        w = tf.convert_to_tensor(kernel)
        w = tf.cast(w, tf.float32)
        w_mat = tf.reshape(w, [-1, w.shape[-1]])  # [fan_in, out] = W^T in PyTorch's view
        u = tf.cast(tf.convert_to_tensor(self.u.value), tf.float32)
        u = _l2_normalize(u)
        v = _l2_normalize(tf.matmul(u, w_mat, transpose_b=True))  # [1, fan_in]
        wv = tf.matmul(v, w_mat)  # [1, out]
        if training:
            u_new = tf.stop_gradient(_l2_normalize(wv))
            self.u.assign(u_new)
            u = u_new
        else:
            u = tf.stop_gradient(u)
        v = tf.stop_gradient(v)
        sigma = tf.reduce_sum(u * tf.matmul(v, w_mat))
        return tf.cast(w / sigma, self.compute_dtype)


@keras.saving.register_keras_serializable(package="autogan_tf")
class SNConv2D(_SpectralNorm, keras.layers.Layer):
    """2-D convolution with spectral normalisation of its kernel (SN-GAN)."""

    def __init__(self, filters: int, kernel_size: int = 3, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        cin = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, cin, self.filters),
            initializer=conv_initializer())
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)
        self._build_u(self.filters)

    def call(self, x, training=False, add_bias=True):
        """`add_bias=False`: the convolution only; the caller adds `self.bias` itself."""
        k = self._normalized_kernel(bool(training))
        y = tf.nn.conv2d(x, k, strides=1, padding="SAME")
        if self.bias is not None and add_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias.value, y.dtype))
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(filters=self.filters, kernel_size=self.kernel_size, use_bias=self.use_bias)
        return cfg


@keras.saving.register_keras_serializable(package="autogan_tf")
class SNDense(_SpectralNorm, keras.layers.Layer):
    """Dense layer with spectral normalisation (the discriminator's linear head)."""

    def __init__(self, units: int, use_bias: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        cin = int(input_shape[-1])
        # PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        self.kernel = self.add_weight(
            name="kernel", shape=(cin, self.units),
            initializer=keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"))
        self.bias = (self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
                     if self.use_bias else None)
        self._build_u(self.units)

    def call(self, x, training=False):
        y = tf.matmul(x, self._normalized_kernel(bool(training)))
        if self.bias is not None:
            y = y + tf.cast(self.bias.value, y.dtype)
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, use_bias=self.use_bias)
        return cfg
