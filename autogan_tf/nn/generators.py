"""Generator cells and generators: the weight-shared supernet and the derived generator.

`SearchCell` holds every candidate op of one cell and chooses the path inside the graph from an
integer tensor, so one traced training step serves every architecture of a stage.
`DerivedCell` builds only the ops of one fixed architecture. Both follow the reference
behaviour (SPEC section 2): the first conv block up-samples; each chosen skip input is
up-sampled with the cell's up mode, passed through a 1x1 conv and added; the cell's skip output
is taken *after* those additions; the optional in-cell shortcut adds a 1x1 conv of the
up-sampled cell input to the cell output.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from autogan_tf.nn import layers as L
from autogan_tf import search_space as ss

__all__ = [
    "SearchCell",
    "DerivedCell",
    "ToRGB",
    "SharedGenerator",
    "DerivedGenerator",
    "count_trainable_params",
    "inherit_supernet_weights",
]


def count_trainable_params(model: keras.layers.Layer) -> int:
    """Number of trainable scalars (what PyTorch's `parameters()` counts)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _skip_bit(cell: int, source: int) -> int:
    # Least significant bit = the nearest earlier cell (search_space.CellChoice.skip_sources).
    return cell - 1 - source


def _switch(index, branches):
    """`tf.switch_case` over Python callables; only the chosen branch runs."""
    return tf.switch_case(tf.cast(index, tf.int32), branch_fns=branches)


def _apply_norm(h, norm: int, bn, training):
    if norm == L.NORM_BATCH:
        return bn(h, training=training)
    if norm == L.NORM_INSTANCE:
        return L.instance_norm(h)
    return h


def _apply_up_dynamic(h, up, deconvs, factor=2):
    return _switch(up, [
        lambda: L.upsample(h, L.UP_BILINEAR, factor),
        lambda: L.upsample(h, L.UP_NEAREST, factor),
        lambda: L.upsample(h, L.UP_DECONV, factor, deconvs),
    ])


@keras.saving.register_keras_serializable(package="autogan_tf")
class SearchCell(keras.layers.Layer):
    """One searchable generator cell of the supernet with every candidate op.

    Separate weights for the pre- and post-activation blocks; each block owns its conv, its BN
    and its deconv (instance norm has no weights). The deconvolutions of the second blocks and
    the skip deconvolutions a cell can never use exist as in the reference implementation, so
    that parameter counts match it exactly; they never lie on any path.

    Call args:
      x: cell input, NHWC with static spatial size.
      skips: skip outputs of all earlier cells (ascending cell index).
      choice: int32 tensor [5] = (conv, norm, up, shortcut, skip) of this cell.
      training: Python bool.
    Returns:
      (skip_out, out) at twice the input resolution.
    """

    def __init__(self, channels: int, cell_index: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.cell_index = int(cell_index)
        c, dt = self.channels, self.dtype_policy
        self.post1_deconv = L.deconv2x2(c, "post1_deconv", dt)
        self.post1_conv = L.conv2d(c, "post1_conv", dt)
        self.post1_bn = L.batch_norm("post1_bn", dt)
        self.pre1_bn = L.batch_norm("pre1_bn", dt)
        self.pre1_deconv = L.deconv2x2(c, "pre1_deconv", dt)
        self.pre1_conv = L.conv2d(c, "pre1_conv", dt)
        self.post2_deconv = L.deconv2x2(c, "post2_deconv", dt)  # parity only
        self.post2_conv = L.conv2d(c, "post2_conv", dt)
        self.post2_bn = L.batch_norm("post2_bn", dt)
        self.pre2_bn = L.batch_norm("pre2_bn", dt)
        self.pre2_deconv = L.deconv2x2(c, "pre2_deconv", dt)  # parity only
        self.pre2_conv = L.conv2d(c, "pre2_conv", dt)
        self.sc_deconv = L.deconv2x2(c, "sc_deconv", dt)
        self.sc_conv = L.conv1x1(c, "sc_conv", dt)
        self.skip_deconv_x2 = [L.deconv2x2(c, "skip_deconv_x2", dt)]
        self.skip_deconv_x4 = [L.deconv2x2(c, f"skip_deconv_x4_{i}", dt) for i in range(2)]
        self.skip_convs = [L.conv1x1(c, f"skip_conv_{s}", dt) for s in range(self.cell_index)]
        L.track_for_checkpoint(self, "ckpt_skip_deconv_x2", self.skip_deconv_x2)
        L.track_for_checkpoint(self, "ckpt_skip_deconv_x4", self.skip_deconv_x4)
        L.track_for_checkpoint(self, "ckpt_skip_conv", self.skip_convs)

    def build(self, input_shape):
        n, h, w, cin = input_shape
        c = self.channels
        lo, hi = (None, h, w, cin), (None, 2 * h, 2 * w, c)
        for layer in (self.post1_deconv, self.pre1_deconv, self.sc_deconv, self.pre1_bn):
            layer.build(lo)
        self.post1_conv.build((None, 2 * h, 2 * w, cin))
        self.pre1_conv.build((None, 2 * h, 2 * w, cin))
        self.sc_conv.build((None, 2 * h, 2 * w, cin))
        for layer in (self.post1_bn, self.post2_deconv, self.post2_conv, self.post2_bn,
                      self.pre2_bn, self.pre2_deconv, self.pre2_conv, *self.skip_convs):
            layer.build(hi)
        self.skip_deconv_x2[0].build((None, h, w, c))
        self.skip_deconv_x4[0].build((None, h, w, c))
        self.skip_deconv_x4[1].build((None, 2 * h, 2 * w, c))

    def _block1(self, x, norm: int, up: int, pre: bool, training):
        # Python-level choices: each (conv, norm, up) combination is one flat branch.
        if pre:
            h = tf.nn.relu(_apply_norm(x, norm, self.pre1_bn, training))
            return self.pre1_conv(L.upsample(h, up, 2, [self.pre1_deconv]))
        h = self.post1_conv(L.upsample(x, up, 2, [self.post1_deconv]))
        return tf.nn.relu(_apply_norm(h, norm, self.post1_bn, training))

    def _block2(self, h, norm: int, pre: bool, training):
        if pre:
            return self.pre2_conv(tf.nn.relu(_apply_norm(h, norm, self.pre2_bn, training)))
        return tf.nn.relu(_apply_norm(self.post2_conv(h), norm, self.post2_bn, training))

    def call(self, x, skips=(), choice=None, training=False):
        training = bool(training)
        conv, norm, up, shortcut, skip = (choice[i] for i in range(5))
        n_norm, n_up = ss.NORM.size, ss.UP.size
        h = _switch(conv * n_norm * n_up + norm * n_up + up, [
            (lambda c=c, n=n, u=u: self._block1(x, n, u, bool(c), training))
            for c in range(ss.CONV.size) for n in range(n_norm) for u in range(n_up)])
        size = (int(h.shape[1]), int(h.shape[2]))
        for source, (f, op) in enumerate(zip(skips, self.skip_convs)):
            factor = size[0] // int(f.shape[1])
            deconvs = self.skip_deconv_x2 if factor == 2 else self.skip_deconv_x4
            on = tf.equal(tf.bitwise.bitwise_and(
                tf.bitwise.right_shift(skip, _skip_bit(self.cell_index, source)), 1), 1)
            h = tf.cond(on,
                        lambda h=h, f=f, op=op, factor=factor, deconvs=deconvs:
                        h + op(_apply_up_dynamic(f, up, deconvs, factor)),
                        lambda h=h: h)
        skip_out = h
        out = _switch(conv * n_norm + norm, [
            (lambda c=c, n=n: self._block2(h, n, bool(c), training))
            for c in range(ss.CONV.size) for n in range(n_norm)])
        out = tf.cond(tf.equal(shortcut, 1),
                      lambda: out + self.sc_conv(_apply_up_dynamic(x, up, [self.sc_deconv])),
                      lambda: out)
        return skip_out, out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(channels=self.channels, cell_index=self.cell_index)
        return cfg


@keras.saving.register_keras_serializable(package="autogan_tf")
class DerivedCell(keras.layers.Layer):
    """One generator cell of a fixed architecture: only the chosen ops exist.

    Args:
      channels: output channels (= input channels in AutoGAN).
      cell_index: 0, 1 or 2.
      tokens: the cell's tokens (conv, norm, up, shortcut[, skip]).
    """

    def __init__(self, channels: int, cell_index: int, tokens, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.cell_index = int(cell_index)
        self.tokens = [int(t) for t in tokens]
        full = self.tokens + [0] * (5 - len(self.tokens))
        self.choice = ss.CellChoice(*full)
        ss.validate_cell(self.cell_index, self.tokens)
        c, dt, ch = self.channels, self.dtype_policy, self.choice
        self.pre = ch.pre_activation
        deconv = ch.up == L.UP_DECONV
        self.bn1 = L.batch_norm("bn1", dt) if ch.norm == L.NORM_BATCH else None
        self.bn2 = L.batch_norm("bn2", dt) if ch.norm == L.NORM_BATCH else None
        self.deconv1 = [L.deconv2x2(c, "deconv1", dt)] if deconv else []
        self.conv1 = L.conv2d(c, "conv1", dt)
        self.conv2 = L.conv2d(c, "conv2", dt)
        self.sc_conv = L.conv1x1(c, "sc_conv", dt) if ch.shortcut else None
        self.sc_deconv = [L.deconv2x2(c, "sc_deconv", dt)] if ch.shortcut and deconv else []
        self.sources = ch.skip_sources(self.cell_index)
        self.skip_convs = [L.conv1x1(c, f"skip_conv_{s}", dt) for s in self.sources]
        self.skip_deconvs = [
            [L.deconv2x2(c, f"skip{s}_deconv_{i}", dt) for i in range(self.cell_index - s)]
            if deconv else [] for s in self.sources]
        for name in ("deconv1", "sc_deconv", "skip_convs", "skip_deconvs"):
            L.track_for_checkpoint(self, f"ckpt_{name}", getattr(self, name))

    def build(self, input_shape):
        n, h, w, cin = input_shape
        c = self.channels
        up_in = (None, 2 * h, 2 * w, cin)
        hi = (None, 2 * h, 2 * w, c)
        for d in self.deconv1 + self.sc_deconv:
            d.build((None, h, w, cin))
        if self.bn1 is not None:
            self.bn1.build((None, h, w, cin) if self.pre else hi)
            self.bn2.build(hi)
        self.conv1.build(up_in)
        self.conv2.build(hi)
        if self.sc_conv is not None:
            self.sc_conv.build(up_in)
        for s, conv, deconvs in zip(self.sources, self.skip_convs, self.skip_deconvs):
            res = 2 * h // 2 ** (self.cell_index - s)
            for i, d in enumerate(deconvs):
                d.build((None, res * 2 ** i, res * 2 ** i, c))
            conv.build(hi)

    def _norm(self, h, bn, training):
        if self.choice.norm == L.NORM_BATCH:
            return bn(h, training=training)
        if self.choice.norm == L.NORM_INSTANCE:
            return L.instance_norm(h)
        return h

    def call(self, x, skips=(), training=False):
        up = self.choice.up
        if self.pre:
            h = tf.nn.relu(self._norm(x, self.bn1, training))
            h = self.conv1(L.upsample(h, up, 2, self.deconv1))
        else:
            h = self.conv1(L.upsample(x, up, 2, self.deconv1))
            h = tf.nn.relu(self._norm(h, self.bn1, training))
        size = (int(h.shape[1]), int(h.shape[2]))
        for s, conv, deconvs in zip(self.sources, self.skip_convs, self.skip_deconvs):
            f = skips[s]
            h = h + conv(L.upsample(f, up, size[0] // int(f.shape[1]), deconvs))
        skip_out = h
        if self.pre:
            out = self.conv2(tf.nn.relu(self._norm(h, self.bn2, training)))
        else:
            out = tf.nn.relu(self._norm(self.conv2(h), self.bn2, training))
        if self.sc_conv is not None:
            out = out + self.sc_conv(L.upsample(x, up, 2, self.sc_deconv))
        return skip_out, out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(channels=self.channels, cell_index=self.cell_index, tokens=list(self.tokens))
        return cfg


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
        h = self.conv(tf.nn.relu(self.bn(x, training=training)))
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

    Call: `generator(z, arch, training=...)` -> float32 images [N, R, R, 3] in [-1, 1].
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
            raise ValueError(f"stage must be in [0, {ss.NUM_CELLS - 1}], got {stage}")
        self.stage = int(stage)

    @property
    def output_resolution(self) -> int:
        return self.resolution(self.stage + 1)

    def call(self, z, arch, training=False):
        arch = tf.cast(arch, tf.int32)
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


def _copy_layer(src: keras.layers.Layer, dst: keras.layers.Layer) -> None:
    if len(src.weights) != len(dst.weights):
        raise ValueError(f"cannot copy {src.name} into {dst.name}: weights differ")
    for s, d in zip(src.weights, dst.weights):
        if tuple(s.shape) != tuple(d.shape):
            raise ValueError(f"cannot copy {s.path} {s.shape} into {d.path} {d.shape}")
        d.assign(s)


def inherit_supernet_weights(shared: SharedGenerator, derived: DerivedGenerator) -> None:
    """Copies the weights of `derived`'s path through the supernet into `derived`.

    Afterwards both generators compute the same function for `derived.arch` (tested), which
    is how a child is scored and how a derived architecture can start from shared weights.
    """
    if (shared.channels, shared.bottom_width, shared.latent_dim) != (
            derived.channels, derived.bottom_width, derived.latent_dim):
        raise ValueError("supernet and derived generator differ in channels, bottom width or "
                         "latent size")
    _copy_layer(shared.l1, derived.l1)
    _copy_layer(shared.to_rgb, derived.to_rgb)
    for sc, dc in zip(shared.cells, derived.cells):
        kind = "pre" if dc.pre else "post"
        _copy_layer(getattr(sc, f"{kind}1_conv"), dc.conv1)
        _copy_layer(getattr(sc, f"{kind}2_conv"), dc.conv2)
        if dc.bn1 is not None:
            _copy_layer(getattr(sc, f"{kind}1_bn"), dc.bn1)
            _copy_layer(getattr(sc, f"{kind}2_bn"), dc.bn2)
        if dc.deconv1:
            _copy_layer(getattr(sc, f"{kind}1_deconv"), dc.deconv1[0])
        if dc.sc_conv is not None:
            _copy_layer(sc.sc_conv, dc.sc_conv)
        if dc.sc_deconv:
            _copy_layer(sc.sc_deconv, dc.sc_deconv[0])
        for s, conv, deconvs in zip(dc.sources, dc.skip_convs, dc.skip_deconvs):
            _copy_layer(sc.skip_convs[s], conv)
            src = sc.skip_deconv_x2 if len(deconvs) == 1 else sc.skip_deconv_x4
            for a, b in zip(src, deconvs):
                _copy_layer(a, b)
