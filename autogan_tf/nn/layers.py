"""Primitive Keras layers and ops shared by the generators and the discriminator.

Spectrally normalised convolution and dense layers (one power iteration per training call, as
SN-GAN), instance normalisation without affine parameters, nearest and bilinear resizing, the
stride-2 deconvolution, and the initialisers that match the reference implementation. Which of
these a generator cell may choose is the op table's business (`nn/cells.py`).

Two fixed linear ops next to a 3x3 convolution are folded into the convolution's kernel, so the
same function costs fewer multiply-adds (the result is the same up to float rounding; the
weights, checkpoints and parameter counts do not change):

* `nearest_up_conv3x3`: nearest 2x up-sampling followed by a 3x3 conv ("same" zero padding).
  Each of the four output phases (even/odd row, even/odd column) sees only a 2x2 window of the
  low-resolution input, so the pair is four 2x2 convs at the input's resolution, interleaved by
  `depth_to_space`: 16 instead of 36 multiply-adds per input pixel and channel pair (2.25x).
* `conv3x3_avg_pool`: a 3x3 conv followed by 2x2 average pooling is one 4x4 conv of stride 2
  whose kernel is the average of the 3x3 kernel at its four offsets: 2.25x fewer again.

Both keep "same" zero padding: the zero border of the up-sampled map is the up-sampling of the
zero border, and a pooled output sums conv outputs whose taps read the same padded input.
Inside `with unfolded():` the layers and cells build the plain order instead (the reference's
graph): `nn/stats.py` counts the reference's multiply-adds that way, and the tests and
`benchmarks/bench_steps.py --fold=on,off` compare the two.

Gradients (`conv_gradients()`, around the training steps' `tape.gradient`): on a CPU,
TensorFlow's input-gradient kernel of a convolution (`Conv2DBackpropInput`) takes 1.2-5x as
long as a forward convolution of the same size (batch 128, 128 channels, 3x3: 357 vs 261 ms at
32 px, 126 vs 68 at 16, 49 vs 20 at 8, 31 vs 6 at 4). The input gradient of a stride-1 conv is
itself a stride-1 conv of the output gradient with the kernel flipped in space and its in/out
channels swapped, so it is computed as one; that of the discriminator's stride-2 4x4 conv
(`conv3x3_avg_pool`) is four 2x2 convs, one per output phase (312 vs 231 ms at 32 px, 117 vs
42 at 16). The forward graph, and with it Grappler's fusions, is unchanged; inside
`unfolded()` and where a GPU is visible (cuDNN's backward kernels are fast) TensorFlow's own
gradient is used.

Batch norm under a `tf.distribute` strategy: in training, a data-parallel step normalises with
the statistics of the global batch. `apply_batch_norm` all-reduces them across replicas itself
(`cross_replica_moments`); the supernet, whose batch norms sit inside `tf.switch_case` branches
where no synchronisation point may be, computes them outside its branches and passes them in
(`nn/cells.py`). Keras's own `synchronized=True` is not used: it all-reduces wherever the layer
is called, which fails inside a branch.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Optional

import keras
import tensorflow as tf

__all__ = [
    "SNConv2D",
    "SNDense",
    "instance_norm",
    "resize_nearest",
    "resize_bilinear",
    "nearest_up_conv3x3",
    "conv3x3_avg_pool",
    "unfolded",
    "folding",
    "conv_gradients",
    "conv_initializer",
    "bias_initializer",
    "batch_norm",
    "batch_norm_needs_sync",
    "cross_replica_moments",
    "cross_replica_moments_many",
    "apply_batch_norm",
    "from_first_replica",
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

    The scale starts at N(1, 0.02) as in the reference's `weights_init`. Call it through
    `apply_batch_norm`, which synchronises the batch statistics across the replicas of a
    `tf.distribute` strategy (the layer itself never does: see the module docstring).
    """
    return keras.layers.BatchNormalization(
        momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02),
        name=name, dtype=dtype)


def batch_norm_needs_sync(training) -> bool:
    """True in training inside a replica function of a `tf.distribute` strategy: batch norm
    must then use the statistics of the global batch, all-reduced across replicas."""
    return (bool(training) and tf.distribute.has_strategy()
            and not tf.distribute.in_cross_replica_context())


def cross_replica_moments(x: tf.Tensor, enabled=None) -> tuple:
    """Per-channel float32 mean and (biased) variance of NHWC `x` over all replicas' batches.

    Two passes, as `tf.nn.moments`: the all-reduced sum and count give the mean, then the
    all-reduced sum of squared deviations gives the variance. Gradients reach every replica's
    input (an all-reduce's gradient is an all-reduce), so with per-replica losses that sum to
    the global loss a step equals a single-device step on the global batch. Every replica must
    call it at the top level of its replica function (not inside a `tf.cond` or
    `tf.switch_case` branch); outside a replica function it is `tf.nn.moments` of `x`.

    Args:
      x: NHWC tensor with a static channel count.
      enabled: optional scalar bool tensor; where False the local sums are skipped (zeros are
        all-reduced) and the moments are meaningless: for a caller whose branch needs none.
    """
    return cross_replica_moments_many([x], [enabled])[0]


def cross_replica_moments_many(xs, enabled) -> list:
    """`cross_replica_moments` of several tensors with one all-reduce per pass.

    Args:
      xs: NHWC tensors with static channel counts.
      enabled: one optional scalar bool tensor (or None) per tensor.
    """
    xs = [tf.cast(x, tf.float32) for x in xs]
    axes = [0, 1, 2]
    if not batch_norm_needs_sync(True):
        return [tf.nn.moments(x, axes) for x in xs]
    sizes = [x.shape[-1] for x in xs]
    if None in sizes:
        raise ValueError(f"cross-replica moments need static channel counts, got "
                         f"{[x.shape for x in xs]}")
    ctx = tf.distribute.get_replica_context()

    def all_reduce(fns):
        parts = []
        for fn, on, size in zip(fns, enabled, [s + 1 for s in sizes]):
            fn = functools.partial(_padded, fn, size)
            parts.append(fn() if on is None else
                         tf.cond(on, fn, lambda size=size: tf.zeros([size], tf.float32)))
        total = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.concat(parts, 0))
        return tf.split(total, [s + 1 for s in sizes])

    def local_sum(x):
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        return tf.concat([tf.reduce_sum(x, axes), count[None]], 0)

    sums = all_reduce([functools.partial(local_sum, x) for x in xs])
    counts = [tf.maximum(tf.stop_gradient(s[-1]), 1.0) for s in sums]
    means = [s[:-1] / n for s, n in zip(sums, counts)]
    # As in tf.nn.moments, the mean is a constant in the second pass: d var / d mean is 0 there.
    squares = all_reduce([
        functools.partial(lambda x, m: tf.reduce_sum(tf.math.squared_difference(x, m), axes),
                          x, tf.stop_gradient(m)) for x, m in zip(xs, means)])
    return [(m, q[:-1] / n) for m, q, n in zip(means, squares, counts)]


def _padded(fn, size):
    """fn()'s vector, padded with zeros to `size` (the second pass has no count entry)."""
    v = fn()
    return tf.pad(v, [[0, size - v.shape[0]]])


def _fusable(layer, x) -> bool:
    return (x.shape.rank == 4 and layer.trainable and not layer.renorm and layer.center
            and layer.scale and layer.axis in (3, -1))


def _fused_batch_norm(layer: keras.layers.BatchNormalization, x: tf.Tensor) -> tf.Tensor:
    """Keras's training-mode batch norm (float32 statistics, biased variance in the moving
    average), computed by TensorFlow's fused kernel (`FusedBatchNormV3`, one op and one
    gradient op instead of about a dozen; fewer passes over the activations).

    The fused op reports the batch variance with Bessel's correction (n / (n - 1)); the moving
    average takes the biased one, as Keras's layer does.
    """
    xf = tf.cast(x, tf.float32)
    empty = tf.constant([], tf.float32)
    y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=xf, scale=tf.cast(layer.gamma.value, tf.float32),
        offset=tf.cast(layer.beta.value, tf.float32), mean=empty, variance=empty,
        epsilon=layer.epsilon, exponential_avg_factor=1.0, data_format="NHWC",
        is_training=True)
    n = tf.cast(tf.reduce_prod(tf.shape(xf)[:3]), tf.float32)
    variance = tf.stop_gradient(variance * (n - 1.0) / tf.maximum(n, 1.0))
    _update_moving_statistics(layer, tf.stop_gradient(mean), variance)
    return tf.cast(y, layer.compute_dtype)


def _update_moving_statistics(layer: keras.layers.BatchNormalization, mean, variance) -> None:
    """Keras's moving-average update of a batch norm with float32 batch statistics."""
    m = layer.momentum
    layer.moving_mean.assign(tf.cast(layer.moving_mean.value, tf.float32) * m + mean * (1.0 - m))
    layer.moving_variance.assign(
        tf.cast(layer.moving_variance.value, tf.float32) * m + variance * (1.0 - m))


def apply_batch_norm(layer: keras.layers.BatchNormalization, x: tf.Tensor, training,
                     moments: Optional[tuple] = None) -> tf.Tensor:
    """`layer(x, training=training)`, with the global batch's statistics under a strategy.

    In training inside a replica function, the batch statistics are `moments` if given (the
    caller all-reduced them), else `cross_replica_moments(x)` (so the call must then be at
    the top level of the replica function); the result and the moving-statistics update are
    those of Keras's layer with these statistics. Elsewhere this is the layer's own call.
    """
    if not batch_norm_needs_sync(training):
        if training and _fusable(layer, x):
            return _fused_batch_norm(layer, x)
        return layer(x, training=training)
    mean, variance = moments if moments is not None else cross_replica_moments(x)
    _update_moving_statistics(layer, mean, variance)
    y = tf.nn.batch_normalization(
        tf.cast(x, tf.float32), mean, variance, offset=tf.cast(layer.beta.value, tf.float32),
        scale=tf.cast(layer.gamma.value, tf.float32), variance_epsilon=layer.epsilon)
    return tf.cast(y, layer.compute_dtype)


def from_first_replica(x: tf.Tensor) -> tf.Tensor:
    """The value of integer or float `x` on replica 0, on every replica of a replica function.

    The supernet takes the architecture from replica 0, so all replicas run the same path even
    if the tasks of a multi-worker run were to choose differently. Outside a replica function
    (or with one replica) it returns `x`.
    """
    ctx = tf.distribute.get_replica_context()
    if not tf.distribute.has_strategy() or ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    first = tf.cast(tf.equal(ctx.replica_id_in_sync_group, 0), tf.float32)
    # float32 holds small integers exactly, and every all-reduce implementation takes it
    return tf.cast(ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(x, tf.float32) * first),
                   x.dtype)


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


_FOLDING = [True]


@contextlib.contextmanager
def unfolded():
    """Functions traced inside build the plain op order (module docstring); re-entrant."""
    _FOLDING.append(False)
    try:
        yield
    finally:
        _FOLDING.pop()


def folding() -> bool:
    """Whether the cheaper folded forms are built (False inside `unfolded()`)."""
    return _FOLDING[-1]


def _conv2d_input_gradient(op, dy):
    """dL/dx of an undilated NHWC `Conv2D` as a forward conv; None where not written here.

    "same", stride 1, odd kernel: the conv of `dy` with the flipped kernel, "same" again.
    "valid", stride s, kernel a multiple of s (stride 1 included): input row s*u + a receives
    `dy` rows u - t through kernel row a + s*t, so each of the s*s phases (a, b) is a "valid"
    conv of `dy` padded by m - 1 (m = kernel // s) with a flipped m x m sub-kernel; one conv
    computes all phases as channel blocks and `depth_to_space` interleaves them.
    """
    strides, padding = list(op.get_attr("strides")), op.get_attr("padding")
    kernel = op.inputs[1]
    kh, kw, c_in, c_out = kernel.shape
    h, w = op.inputs[0].shape[1:3]
    if (list(op.get_attr("dilations")) != [1, 1, 1, 1] or op.get_attr("data_format") != b"NHWC"
            or None in (kh, kw, c_in, c_out, h, w) or strides[0] != 1 or strides[3] != 1):
        return None
    s = strides[1]
    if padding == b"SAME" and s == 1 == strides[2] and kh % 2 == 1 and kw % 2 == 1:
        flipped = tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])  # [kh, kw, out, in]
        return tf.nn.conv2d(dy, flipped, 1, "SAME")
    if padding != b"VALID" or strides[2] != s or kh % s or kw % s:
        return None
    mh, mw = kh // s, kw // s
    # Kernel row a + s*t (t = 0..m-1) sits at flipped row s*(m-1-t) + (s-1-a).
    k = tf.reshape(tf.reverse(kernel, [0, 1]), [mh, s, mw, s, c_in, c_out])
    k = tf.transpose(tf.reverse(k, [1, 3]), [0, 2, 5, 1, 3, 4])  # [mh, mw, out, a, b, in]
    k = tf.reshape(k, [mh, mw, c_out, s * s * c_in])
    dy = tf.pad(dy, [[0, 0], [mh - 1, mh - 1], [mw - 1, mw - 1], [0, 0]])
    dx = tf.nn.conv2d(dy, k, 1, "VALID")
    if s > 1:
        dx = tf.nn.depth_to_space(dx, s)
    # Input rows past the last window (a size that is not s * n + kernel - s) get no gradient.
    dx = dx[:, :h, :w]
    return tf.pad(dx, [[0, 0], [0, h - dx.shape[1]], [0, w - dx.shape[2]], [0, 0]])


def _conv2d_gradient(native):
    def gradient(op, dy):
        dx = _conv2d_input_gradient(op, dy)
        if dx is None:
            return native(op, dy)
        dk = tf.raw_ops.Conv2DBackpropFilter(
            input=op.inputs[0], filter_sizes=tf.shape(op.inputs[1]), out_backprop=dy,
            strides=op.get_attr("strides"), padding=op.get_attr("padding"),
            explicit_paddings=op.get_attr("explicit_paddings"),
            data_format=op.get_attr("data_format"), dilations=op.get_attr("dilations"))
        return [dx, dk]
    return gradient


@contextlib.contextmanager
def conv_gradients():
    """Gradients taken inside compute convolutions' input gradients as forward convolutions.

    Module docstring. Only the construction of gradient graphs (`tape.gradient` while tracing)
    is affected; re-entrant. TensorFlow's own gradient function is used inside `unfolded()`,
    where a GPU is visible, and if this TensorFlow keeps its gradient registry elsewhere.
    """
    from tensorflow.python.framework import ops as tf_ops  # the gradient registry
    entry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", {}).get("Conv2D")
    if (entry is None or not folding() or getattr(entry["type"], "_autogan_tf", False)
            or tf.config.list_logical_devices("GPU")):
        yield
        return
    native = entry["type"]
    entry["type"] = _conv2d_gradient(native)
    entry["type"]._autogan_tf = True
    try:
        yield
    finally:
        entry["type"] = native


# Row (or column) taps of the nearest-up + 3x3 conv pair: for output phase a (0: even, 1: odd),
# which of the kernel's three taps (rows) fall on each of the two input rows of its window.
# Phase 0 at 2i reads up-sampled rows 2i-1, 2i, 2i+1 = input rows i-1, i, i; phase 1 reads
# rows 2i, 2i+1, 2i+2 = input rows i, i, i+1.
_NEAREST_PHASE_TAPS = (((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)),
                       ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)))


def _folding_kernel(kernel, what: str) -> tf.Tensor:
    """A 3x3 kernel as a tensor to fold, in float32 if it is stored in a 16-bit type (the
    folded taps are sums of up to four weights; they are rounded once, when cast for the conv).
    """
    k = tf.convert_to_tensor(kernel)
    if tuple(k.shape[:2]) != (3, 3):
        raise ValueError(f"{what} folds a 3x3 kernel; got a kernel of shape {tuple(k.shape)}")
    return tf.cast(k, tf.float32) if k.dtype in (tf.bfloat16, tf.float16) else k


def nearest_up_conv3x3(x: tf.Tensor, kernel, bias=None) -> tf.Tensor:
    """`conv3x3(resize_nearest(x, 2x))` ("same" padding, stride 1), at `x`'s resolution.

    Args:
      x: NHWC input (the low resolution).
      kernel: [3, 3, in, out] (a variable or tensor; folded in float32 or float64, then
        cast to `x`'s dtype).
      bias: optional [out], added to each phase's conv (a fusable conv + bias).
    Returns:
      [N, 2H, 2W, out], equal to the up-sampling followed by the conv up to float rounding.
    """
    k = _folding_kernel(kernel, "nearest_up_conv3x3")
    taps = tf.constant(_NEAREST_PHASE_TAPS, k.dtype)  # [phase, window tap, kernel tap]
    phases = tf.einsum("apr,bqs,rsio->abpqio", taps, taps, k)  # [2, 2, 2, 2, in, out]
    outs = []
    for a in (0, 1):
        for b in (0, 1):
            # The window of phase (a, b) at (i, j) is input rows i-1+a.., columns j-1+b..
            xp = tf.pad(x, [[0, 0], [1 - a, a], [1 - b, b], [0, 0]])
            y = tf.nn.conv2d(xp, tf.cast(phases[a, b], x.dtype), 1, "VALID")
            if bias is not None:
                y = tf.nn.bias_add(y, tf.cast(bias, y.dtype))
            outs.append(y)
    # depth_to_space puts channel block 2a + b at output pixel (2i + a, 2j + b).
    return tf.nn.depth_to_space(tf.concat(outs, -1), 2)


def conv3x3_avg_pool(x: tf.Tensor, kernel) -> tf.Tensor:
    """`avg_pool2x2(conv3x3(x))` ("same" padding, then 2x2 "valid" pooling), no bias.

    One stride-2 4x4 conv over the zero-padded input: pooled output (i, j) averages the conv
    outputs at rows 2i, 2i+1 and columns 2j, 2j+1, which read padded rows 2i..2i+3.
    """
    k = _folding_kernel(kernel, "conv3x3_avg_pool")
    shifted = [tf.pad(k, [[a, 1 - a], [b, 1 - b], [0, 0], [0, 0]])
               for a in (0, 1) for b in (0, 1)]
    k4 = tf.cast(0.25 * tf.add_n(shifted), x.dtype)
    return tf.nn.conv2d(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), k4, 2, "VALID")


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

    def call(self, x, training=False, add_bias=True, avg_pool=False):
        """`add_bias=False`: the convolution only; the caller adds `self.bias` itself.

        `avg_pool=True`: the 2x2 average pool of the output, computed as one stride-2 conv
        (`conv3x3_avg_pool`; 3x3 kernels only). The bias commutes with the pool.
        """
        k = self._normalized_kernel(bool(training))
        if avg_pool and folding():
            y = conv3x3_avg_pool(x, k)
        else:
            y = tf.nn.conv2d(x, k, strides=1, padding="SAME")
            if avg_pool:
                y = tf.nn.avg_pool2d(y, 2, 2, "VALID")
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
