"""The op table of a generator cell, and the two cells that read it.

One table (`CELL_OPS`) says, for each option of the cell tokens `conv`, `norm` and `up` of
`search_space`, what the op is: whether it has weights, how to build its layer and how to apply
it. Everything else reads the table:

* `conv_block` computes a cell's conv block (block 1 up-samples, block 2 does not) for any
  (conv kind, norm op, up op), given a lookup of the layers it needs;
* `SearchCell` (the supernet) builds every op of the table and switches over the table's
  options inside the graph; `DerivedCell` builds only the ops of one architecture;
* both name the layers on a path by the same role keys (`path_roles`), and
  `inherit_cell_weights` copies a supernet path into a derived cell by those keys, so weight
  inheritance reads the mapping the forward pass uses.

Role keys (the weighted layers of one path, in the order a `DerivedCell` creates them)::

    ("block1", "norm"), ("block2", "norm"), ("block1", "up", 0),
    ("block1", "conv"), ("block2", "conv"),
    ("shortcut", "conv"), ("shortcut", "up", 0),
    ("skip", s, "conv") for each skip source s, then ("skip", s, "up", i) for each s and doubling i

A role whose op has no weights (no norm, instance norm, bilinear and nearest up-sampling) is
not listed.

Adding an op:

1. add its option name to the token's vocabulary in `search_space` (`NORM`, `UP` or `CONV`),
   which also gives the controller its new logit and the architecture JSON its new value;
2. add one entry under that name to `CELL_OPS` below: `Op(key, apply, make)` for a norm or up
   op (`apply` is the computation, `make` builds its layer when it has weights and `key` names
   that layer), `ConvKind(key, steps)` for a new order of norm, ReLU, up and conv. An up op
   may also say how to run more cheaply next to a conv: `linear=True` for a fixed resampling
   that a 1x1 conv commutes with, `conv3x3` for itself followed by a 3x3 conv in one step (see
   "Cheaper forms" below);
3. add its test (for example the supernet path of an architecture using it equals its derived
   cell, as `tests/test_models.py` checks for every option).

Nothing else changes: the supernet creates the op's layers (attributes `<kind><block>_<key>`,
`sc_<key>`, `skip_<key>_x<factor>`), its `tf.switch_case` gets the new branch, derived cells
build it when chosen, and inheritance copies it. `tests/test_cells.py` shows this with an up op
that exists only in the test.

Under a `tf.distribute` strategy, batch norm in training uses the statistics of the global
batch. A synchronisation point may not sit inside a `tf.switch_case` branch, so in a replica
function the supernet splits each conv block at its norm step: the steps before the norm run
first (those of the chosen conv kind), the statistics of their result are all-reduced outside
any branch (`layers.cross_replica_moments_many`), and a switch runs the norm (with those
statistics, for an op with `batch_stats`) and the steps after it. Outside a strategy the
blocks are one switch each, as before. A new norm op that normalises with batch statistics
sets `batch_stats=True` and takes `moments=(mean, variance)` in `apply`.

Cheaper forms: the cells compute the same function in fewer multiply-adds where an up op allows
it (equal up to float rounding; the weights and their names do not change):

* a `linear` up op (bilinear, nearest: the same fixed linear map on every channel, weights
  summing to 1 at each output pixel) commutes with a 1x1 conv and its bias, so the skip and
  shortcut 1x1 convs run before it, at the source's resolution (4x or 16x fewer);
* an up op with `conv3x3` (nearest: `layers.nearest_up_conv3x3`) runs together with the 3x3
  conv that follows it in a block, as four 2x2 convs at the input's resolution (2.25x fewer).

Inside `layers.unfolded()` the cells build the plain order.

Checkpoints follow attribute names (`tf.train.Checkpoint`), and optimizer slots follow the order
of `weights`; the cells keep the attribute names and creation order of release 0.1 (pinned by
`tests/test_cells.py`), so earlier training and search runs keep restoring.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Mapping, Optional, Sequence

import keras
import tensorflow as tf

from autogan_tf import search_space as ss
from autogan_tf.errors import ArchitectureError, ConfigError
from autogan_tf.nn import layers as L

__all__ = [
    "Op",
    "ConvKind",
    "OpTable",
    "CELL_OPS",
    "conv_block",
    "up_conv1x1",
    "path_roles",
    "SearchCell",
    "DerivedCell",
    "inherit_cell_weights",
    "copy_layer_weights",
]


# ----- the table -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Op:
    """One option of the `norm` or `up` token.

    Attributes:
      key: names the op's layers (`bn` gives `pre1_bn`, `bn1`); None for an op without weights.
      apply: the computation. A norm op: `apply(x, layer, training)` (layer None without
        weights). An up op: `apply(x, factor, layers)` with one layer per doubling (none
        without weights); `factor` is a power of two.
      make: builds one layer of the op, `make(channels, name, dtype)`; None without weights. An
        up op's layer doubles the resolution.
      batch_stats: a norm op that normalises with the statistics of the batch (batch norm):
        its `apply` also takes `moments=(mean, variance)`, the global batch's statistics under
        a strategy (None: its own).
      linear: an up op without weights that applies one fixed linear map to every channel,
        its weights summing to 1 at each output pixel: a 1x1 conv (with its bias) gives the
        same result before it as after it, and is cheaper before it.
      conv3x3: an up op's cheaper form of itself (2x) followed by a 3x3 "same" conv:
        `conv3x3(x, conv_layer)` -> the conv layer's output, bias included.
    """

    key: Optional[str]
    apply: Callable
    make: Optional[Callable] = None
    batch_stats: bool = False
    linear: bool = False
    conv3x3: Optional[Callable] = None

    def __post_init__(self):
        if (self.key is None) != (self.make is None):
            raise ConfigError(f"an op has weights exactly when it has a key and a make "
                              f"function; got key={self.key!r}, make={self.make!r}")

    @property
    def has_weights(self) -> bool:
        return self.make is not None


@dataclasses.dataclass(frozen=True)
class ConvKind:
    """One option of the `conv` token: where norm, ReLU and up-sampling sit around the conv.

    Attributes:
      key: prefix of the supernet's layer attributes (`pre` gives `pre1_conv`).
      steps: the order of "norm", "relu", "up" and "conv" in a block.
    """

    key: str
    steps: tuple


@dataclasses.dataclass(frozen=True)
class OpTable:
    """The ops of each option of the cell tokens `conv`, `norm` and `up`, in token order.

    Build it with `OpTable.from_names`, which orders the entries by the tokens' vocabularies.
    """

    conv: tuple
    norm: tuple
    up: tuple
    tokens: tuple = (ss.CONV, ss.NORM, ss.UP)

    @classmethod
    def from_names(cls, conv: Mapping[str, ConvKind], norm: Mapping[str, Op],
                   up: Mapping[str, Op], tokens: Sequence[ss.Token] = (ss.CONV, ss.NORM, ss.UP)
                   ) -> "OpTable":
        """A table from option names to entries, ordered as `tokens` (default: the search space).

        Raises:
          ConfigError: if the names are not exactly the options of the token.
        """
        ordered = []
        for tok, entries in zip(tokens, (conv, norm, up)):
            if set(entries) != set(tok.options):
                raise ConfigError(
                    f"the op table's {tok.name} entries {sorted(entries)} differ from the "
                    f"search space's {tok.name} options {sorted(tok.options)}; give exactly one "
                    f"entry per option")
            ordered.append(tuple(entries[name] for name in tok.options))
        return cls(*ordered, tokens=tuple(tokens))

    def validate_cell(self, cell: int, tokens: Sequence[int]) -> None:
        """Checks a cell's tokens: its op tokens against this table, the rest against the space.

        Raises:
          ArchitectureError: naming the bad token and the values it may take.
        """
        tokens = [int(t) for t in tokens]
        n = len(self.tokens)
        if len(tokens) != len(ss.stage_tokens(cell)):
            ss.validate_cell(cell, tokens)  # raises, naming the expected tokens
        ss.validate_cell(cell, [0] * n + tokens[n:])
        for tok, v in zip(self.tokens, tokens):
            if not 0 <= v < tok.size:
                allowed = ", ".join(f"{k}={name}" for k, name in enumerate(tok.options))
                raise ArchitectureError(f"cell{cell} {tok.name} is {v}; it may take "
                                        f"0..{tok.size - 1} ({allowed})")


def _instance_norm(x, layer, training):
    del layer, training
    return L.instance_norm(x)


def _batch_norm(x, layer, training, moments=None):
    return L.apply_batch_norm(layer, x, training, moments)


def _resize(method):
    def apply(x, factor, layers):
        del layers
        size = (int(x.shape[1]) * factor, int(x.shape[2]) * factor)
        return L.resize_nearest(x, size) if method == "nearest" else L.resize_bilinear(x, size)
    return apply


def _nearest_up_conv3x3(x, conv: keras.layers.Conv2D):
    return L.nearest_up_conv3x3(x, conv.kernel, conv.bias)


def _stacked(x, factor, layers):
    """Applies one stride-2 layer per doubling (a 4x skip under deconv: two deconvs)."""
    if 2 ** len(layers) != factor:
        raise ConfigError(f"{len(layers)} up-sampling layers cannot up-sample by {factor}")
    for layer in layers:
        x = layer(x)
    return x


CELL_OPS = OpTable.from_names(
    conv={
        "post-activation": ConvKind("post", ("up", "conv", "norm", "relu")),
        "pre-activation": ConvKind("pre", ("norm", "relu", "up", "conv")),
    },
    norm={
        "none": Op(None, lambda x, layer, training: x),
        "batch norm": Op("bn", _batch_norm, lambda c, name, dtype: L.batch_norm(name, dtype),
                         batch_stats=True),
        "instance norm": Op(None, _instance_norm),  # no affine parameters
    },
    up={
        "bilinear": Op(None, _resize("bilinear"), linear=True),
        "nearest": Op(None, _resize("nearest"), linear=True, conv3x3=_nearest_up_conv3x3),
        "deconv": Op("deconv", _stacked, L.deconv2x2),
    },
)
"""The search space's ops (SPEC section 2)."""


# ----- one block, one path ---------------------------------------------------------------------
def conv_block(x, kind: ConvKind, norm: Optional[Op], up: Optional[Op], layer: Callable,
               training, steps: Optional[Sequence[str]] = None, moments=None):
    """One conv block of a cell: `kind`'s steps with the chosen norm and up ops.

    Args:
      x: NHWC input.
      kind, norm: the block's conv kind and norm op (None only if `steps` has no norm).
      up: the up op; None for the second block, which keeps the resolution.
      layer: `layer(role)` -> the block's layer of a role: ("conv",), ("norm",) (asked only
        for a norm op with weights) or ("up", 0) (only for an up op with weights).
      training: Python bool.
      steps: only these of `kind`'s steps (default: all); the supernet splits a block at its
        norm under a strategy.
      moments: (mean, variance) for a `batch_stats` norm op; None: its own statistics.

    An up op with a `conv3x3` form runs together with a conv that directly follows it.
    """
    steps = tuple(kind.steps if steps is None else steps)
    folded = False  # the conv already ran with the up op
    for i, step in enumerate(steps):
        if step == "norm":
            norm_layer = layer(("norm",)) if norm.has_weights else None
            x = (norm.apply(x, norm_layer, training, moments=moments) if norm.batch_stats
                 else norm.apply(x, norm_layer, training))
        elif step == "relu":
            x = tf.nn.relu(x)
        elif step == "up" and up is not None:
            if (up.conv3x3 is not None and steps[i + 1:i + 2] == ("conv",)
                    and L.folding()):
                x, folded = up.conv3x3(x, layer(("conv",))), True
            else:
                x = up.apply(x, 2, [layer(("up", 0))] if up.has_weights else [])
        elif step == "conv" and not folded:
            x = layer(("conv",))(x)
    return x


def up_conv1x1(x, up: Op, factor: int, up_layers, conv: keras.layers.Conv2D):
    """`conv(up(x))` without `conv`'s bias, for a skip input or a shortcut.

    A `linear` up op runs after the 1x1 conv, which then works at `x`'s resolution (`factor`
    squared times fewer multiply-adds; the same result up to rounding, Op.linear); other up ops
    run before it.
    """
    def conv_op(t):
        return conv.convolution_op(t, tf.cast(conv.kernel, t.dtype))

    if up.linear and L.folding():
        return up.apply(conv_op(x), factor, [])
    return conv_op(up.apply(x, factor, up_layers))


def _add_convs(h, terms):
    """`h + sum(conv(...) for conv, term in terms)`, with the convs' biases added last.

    Each term is `(conv, term)`: `term(conv)` gives the conv's output without its bias (for
    example `up_conv1x1`). The same sum as adding each conv's output, bias included (up to
    float rounding). Written as conv -> bias -> add, a sum that the next cell reads twice (its
    ReLU and its shortcut or skip input) makes Grappler's remapper fuse the add into the conv
    and then fail ("Mutation::Apply error: fanout ... exist for missing node .../add"), which
    drops every fusion of the step; with the biases after the sum the pass succeeds.
    """
    bias = None
    for conv, term in terms:
        h = h + term(conv)
        b = tf.cast(conv.bias, h.dtype)
        bias = b if bias is None else bias + b
    return tf.nn.bias_add(h, bias)


def _block_build_shapes(kind: ConvKind, input_shape, channels: int, upsample: bool) -> dict:
    """The input shape of each layer role of a block (the up role even where it never runs)."""
    n, h, w, c = input_shape
    shapes = {}
    for step in kind.steps:
        if step == "norm":
            shapes[("norm",)] = (n, h, w, c)
        elif step == "up":
            shapes[("up", 0)] = (n, h, w, c)
            if upsample:
                h, w = 2 * h, 2 * w
        elif step == "conv":
            shapes[("conv",)] = (n, h, w, c)
            c = channels
    return shapes


def _skip_factor(cell: int, source: int) -> int:
    return 2 ** (cell - source)


def path_roles(cell: int, choice: ss.CellChoice, ops: OpTable = CELL_OPS) -> list:
    """The role keys of the weighted layers on one path through cell `cell` (module docstring).

    The order is the order a `DerivedCell` creates its layers (that of release 0.1).
    """
    norm, up = ops.norm[choice.norm], ops.up[choice.up]
    sources = choice.skip_sources(cell)
    roles = []
    if norm.has_weights:
        roles += [("block1", "norm"), ("block2", "norm")]
    if up.has_weights:
        roles.append(("block1", "up", 0))
    roles += [("block1", "conv"), ("block2", "conv")]
    if choice.shortcut:
        roles.append(("shortcut", "conv"))
        if up.has_weights:
            roles.append(("shortcut", "up", 0))
    roles += [("skip", s, "conv") for s in sources]
    if up.has_weights:
        for s in sources:
            n_up = _skip_factor(cell, s).bit_length() - 1
            roles += [("skip", s, "up", i) for i in range(n_up)]
    return roles


def _choice(tokens) -> ss.CellChoice:
    tokens = [int(t) for t in tokens]
    return ss.CellChoice(*(tokens + [0] * (5 - len(tokens))))


def _switch(index, branches):
    """`tf.switch_case` over Python callables; only the chosen branch runs."""
    return tf.switch_case(tf.cast(index, tf.int32), branch_fns=branches)


def _bit(mask, position: int):
    return tf.equal(tf.bitwise.bitwise_and(tf.bitwise.right_shift(mask, position), 1), 1)


# ----- the supernet cell -----------------------------------------------------------------------
@keras.saving.register_keras_serializable(package="autogan_tf")
class SearchCell(keras.layers.Layer):
    """One searchable generator cell of the supernet with every op of the table.

    Separate weights for each conv kind's blocks; each block owns its conv and one layer per
    weighted norm and up op. The up layers of the second blocks and the skip up layers a cell
    can never use exist as in the reference implementation, so that parameter counts match it
    exactly; they never lie on any path. Skip up-sampling layers are shared by factor
    (`skip_deconv_x2`, `skip_deconv_x4`), not by source, as in the reference.

    Args:
      channels: output channels (= input channels in AutoGAN).
      cell_index: 0, 1 or 2.
      ops: the op table (default: the search space's); only the default serialises.

    Call args:
      x: cell input, NHWC with static spatial size.
      skips: skip outputs of all earlier cells (ascending cell index).
      choice: int32 tensor [5] = (conv, norm, up, shortcut, skip) of this cell.
      training: Python bool.
    Returns:
      (skip_out, out) at twice the input resolution.
    """

    def __init__(self, channels: int, cell_index: int, ops: OpTable = CELL_OPS, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.cell_index = int(cell_index)
        self.ops = ops
        c, dt = self.channels, self.dtype_policy
        weighted_norms = [op for op in ops.norm if op.has_weights]
        weighted_ups = [op for op in ops.up if op.has_weights]
        # Creation order = weight order (optimizer slots) = initialiser seed order: as 0.1.
        for block in (1, 2):
            for kind in ops.conv:
                for step in kind.steps:
                    prefix = f"{kind.key}{block}_"
                    if step == "conv":
                        setattr(self, prefix + "conv", L.conv2d(c, prefix + "conv", dt))
                    for op in {"norm": weighted_norms, "up": weighted_ups}.get(step, ()):
                        setattr(self, prefix + op.key, op.make(c, prefix + op.key, dt))
        for op in weighted_ups:
            setattr(self, f"sc_{op.key}", op.make(c, f"sc_{op.key}", dt))
        self.sc_conv = L.conv1x1(c, "sc_conv", dt)
        factors = [2 ** k for k in range(1, ss.NUM_CELLS)]
        for op in weighted_ups:
            for f in factors:
                n_up = f.bit_length() - 1
                names = ([f"skip_{op.key}_x{f}"] if n_up == 1 else
                         [f"skip_{op.key}_x{f}_{i}" for i in range(n_up)])
                setattr(self, f"skip_{op.key}_x{f}", [op.make(c, name, dt) for name in names])
        self.skip_convs = [L.conv1x1(c, f"skip_conv_{s}", dt) for s in range(self.cell_index)]
        for op in weighted_ups:
            for f in factors:
                L.track_for_checkpoint(self, f"ckpt_skip_{op.key}_x{f}",
                                       getattr(self, f"skip_{op.key}_x{f}"))
        L.track_for_checkpoint(self, "ckpt_skip_conv", self.skip_convs)

    # One lookup from (role, chosen ops) to layer serves the forward pass and `path_layers`.
    def _layer(self, role, kind: ConvKind, norm: Op, up: Op):
        if role[0] in ("block1", "block2"):
            prefix = f"{kind.key}{role[0][-1]}_"
            if role[1] == "conv":
                return getattr(self, prefix + "conv")
            return getattr(self, prefix + (norm.key if role[1] == "norm" else up.key))
        if role[0] == "shortcut":
            return self.sc_conv if role[1] == "conv" else getattr(self, f"sc_{up.key}")
        _, source, what = role[:3]
        if what == "conv":
            return self.skip_convs[source]
        return getattr(self, f"skip_{up.key}_x{_skip_factor(self.cell_index, source)}")[role[3]]

    def path_layers(self, tokens) -> dict:
        """The weighted layers on one path, by role key.

        Args:
          tokens: this cell's tokens (conv, norm, up, shortcut[, skip]), Python ints.
        Raises:
          ArchitectureError: for tokens outside the search space (or `ops`).
        """
        self.ops.validate_cell(self.cell_index, tokens)
        ch = _choice(tokens)
        chosen = (self.ops.conv[ch.conv], self.ops.norm[ch.norm], self.ops.up[ch.up])
        return {role: self._layer(role, *chosen)
                for role in path_roles(self.cell_index, ch, self.ops)}

    def build(self, input_shape):
        _, h, w, cin = input_shape
        c = self.channels
        for kind in self.ops.conv:
            for block, shape, upsample in ((1, (None, h, w, cin), True),
                                           (2, (None, 2 * h, 2 * w, c), False)):
                shapes = _block_build_shapes(kind, shape, c, upsample)
                prefix = f"{kind.key}{block}_"
                getattr(self, prefix + "conv").build(shapes[("conv",)])
                for role, group in ((("norm",), self.ops.norm), (("up", 0), self.ops.up)):
                    for op in group:
                        if op.has_weights:
                            getattr(self, prefix + op.key).build(shapes[role])
        self.sc_conv.build((None, 2 * h, 2 * w, cin))
        for op in self.ops.up:
            if op.has_weights:
                getattr(self, f"sc_{op.key}").build((None, h, w, cin))
                for k in range(1, ss.NUM_CELLS):  # shared by sources: any resolution
                    for layer in getattr(self, f"skip_{op.key}_x{2 ** k}"):
                        layer.build((None, None, None, c))
        for conv in self.skip_convs:
            conv.build((None, 2 * h, 2 * w, c))

    def _up_conv1x1(self, x, up_index, factor, role, conv):
        """`conv(up(x))` with the chosen up op inside the graph, `conv`'s bias left out
        (`up_conv1x1`); `role` names the up layers of weighted ops."""
        n_up = factor.bit_length() - 1
        return _switch(up_index, [
            (lambda op=op: up_conv1x1(x, op, factor, [
                self._layer(role + (i,), None, None, op) for i in range(n_up)]
                if op.has_weights else [], conv))
            for op in self.ops.up])

    def _synced_block(self, name, inputs, conv, norm, up, training):
        """A conv block split at its norm, the batch statistics all-reduced between the parts
        (module docstring). `up` is None for the second block.

        Each conv kind's steps before the norm run only when that kind is chosen (else zeros
        of their static shape stand in), so every tensor keeps a static shape; one all-reduce
        per pass serves the statistics of every kind.
        """
        ops = self.ops
        upsample = up is not None
        ups = ops.up if upsample else (None,)
        up_index = up if upsample else 0

        def lookup(kind, norm_op, up_op):
            return lambda role: self._layer((name,) + role, kind, norm_op, up_op)

        heads = []
        for k, kind in enumerate(ops.conv):
            steps = kind.steps[:kind.steps.index("norm")]
            if not steps:  # the norm reads the block input
                heads.append(inputs)
                continue
            shape = _block_build_shapes(kind, tuple(inputs.shape), self.channels,
                                        upsample)[("norm",)]

            def head(kind=kind, steps=steps):
                def run(up_op):
                    return conv_block(inputs, kind, None, up_op, lookup(kind, None, up_op),
                                      training, steps=steps)
                if "up" not in steps or not upsample:
                    return run(None)
                return _switch(up_index, [(lambda u=u: run(u)) for u in ups])

            def stand_in(shape=shape):
                return tf.zeros(tf.concat([tf.shape(inputs)[:1], shape[1:]], 0), inputs.dtype)

            heads.append(tf.cond(tf.equal(conv, k), head, stand_in))
        moments = [None] * len(heads)
        stats_norms = [i for i, op in enumerate(ops.norm) if op.batch_stats]
        if stats_norms:
            needed = tf.reduce_any(tf.equal(norm, tf.constant(stats_norms, norm.dtype)))
            moments = L.cross_replica_moments_many(
                heads, [tf.logical_and(needed, tf.equal(conv, k)) for k in range(len(heads))])

        def tail(k, norm_op, up_op):
            kind = ops.conv[k]
            return conv_block(heads[k], kind, norm_op, up_op, lookup(kind, norm_op, up_op),
                              training, steps=kind.steps[kind.steps.index("norm"):],
                              moments=moments[k] if norm_op.batch_stats else None)

        return _switch((conv * len(ops.norm) + norm) * len(ups) + up_index, [
            (lambda k=k, n=n, u=u: tail(k, n, u))
            for k, n, u in itertools.product(range(len(ops.conv)), ops.norm, ups)])

    def call(self, x, skips=(), choice=None, training=False):
        training = bool(training)
        conv, norm, up, shortcut, skip = (choice[i] for i in range(5))
        ops = self.ops
        n_norm, n_up = len(ops.norm), len(ops.up)
        synced = L.batch_norm_needs_sync(training)

        def block(name, inputs, kind, norm_op, up_op):
            return conv_block(
                inputs, kind, norm_op, up_op,
                lambda role: self._layer((name,) + role, kind, norm_op, up_op), training)

        if synced:
            h = self._synced_block("block1", x, conv, norm, up, training)
        else:
            h = _switch((conv * n_norm + norm) * n_up + up, [
                (lambda k=k, n=n, u=u: block("block1", x, k, n, u))
                for k, n, u in itertools.product(ops.conv, ops.norm, ops.up)])
        size = int(h.shape[1])
        for source, f in enumerate(skips):
            factor = size // int(f.shape[1])
            h = tf.cond(_bit(skip, self.cell_index - 1 - source),  # LSB = nearest earlier cell
                        lambda h=h, f=f, s=source, factor=factor: _add_convs(h, [(
                            self._layer(("skip", s, "conv"), None, None, None),
                            lambda conv, f=f, s=s, factor=factor: self._up_conv1x1(
                                f, up, factor, ("skip", s, "up"), conv))]),
                        lambda h=h: h)
        skip_out = h
        if synced:
            out = self._synced_block("block2", h, conv, norm, None, training)
        else:
            out = _switch(conv * n_norm + norm, [
                (lambda k=k, n=n: block("block2", h, k, n, None))
                for k, n in itertools.product(ops.conv, ops.norm)])
        out = tf.cond(tf.equal(shortcut, 1),
                      lambda: _add_convs(out, [(
                          self._layer(("shortcut", "conv"), None, None, None),
                          lambda conv: self._up_conv1x1(x, up, 2, ("shortcut", "up"), conv))]),
                      lambda: out)
        return skip_out, out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(channels=self.channels, cell_index=self.cell_index)
        return cfg


# ----- the derived cell ------------------------------------------------------------------------
def _derived_names(role, norm: Op, up: Op, sources) -> tuple:
    """(attribute, layer name) of a derived cell's layer: the names of release 0.1."""
    if role[0] in ("block1", "block2"):
        block = role[0][-1]
        if role[1] == "conv":
            return f"conv{block}", f"conv{block}"
        if role[1] == "norm":
            return f"{norm.key}{block}", f"{norm.key}{block}"
        return f"ckpt_{up.key}{block}_{role[2]}", f"{up.key}{block}"
    if role[0] == "shortcut":
        if role[1] == "conv":
            return "sc_conv", "sc_conv"
        return f"ckpt_sc_{up.key}_{role[2]}", f"sc_{up.key}"
    _, s, what = role[:3]
    k = sources.index(s)
    if what == "conv":
        return f"ckpt_skip_convs_{k}", f"skip_conv_{s}"
    return f"ckpt_skip_{up.key}s_{k}_{role[3]}", f"skip{s}_{up.key}_{role[3]}"


@keras.saving.register_keras_serializable(package="autogan_tf")
class DerivedCell(keras.layers.Layer):
    """One generator cell of a fixed architecture: only the chosen ops exist.

    Args:
      channels: output channels (= input channels in AutoGAN).
      cell_index: 0, 1 or 2.
      tokens: the cell's tokens (conv, norm, up, shortcut[, skip]).
      ops: the op table (default: the search space's); only the default serialises.

    Raises:
      ArchitectureError: for tokens outside the search space (or `ops`).
    """

    def __init__(self, channels: int, cell_index: int, tokens, ops: OpTable = CELL_OPS,
                 **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.cell_index = int(cell_index)
        self.tokens = [int(t) for t in tokens]
        self.ops = ops
        ops.validate_cell(self.cell_index, self.tokens)
        self.choice = _choice(self.tokens)
        self.sources = self.choice.skip_sources(self.cell_index)
        self.kind = ops.conv[self.choice.conv]
        self.norm_op, self.up_op = ops.norm[self.choice.norm], ops.up[self.choice.up]
        self._roles = {}  # role -> attribute name (names, not layers: nothing to checkpoint)
        for role in path_roles(self.cell_index, self.choice, ops):
            attr, name = _derived_names(role, self.norm_op, self.up_op, self.sources)
            if role[-1] == "conv":
                make = L.conv2d if role[0] in ("block1", "block2") else L.conv1x1
                layer = make(self.channels, name, self.dtype_policy)
            else:
                op = self.norm_op if role[1] == "norm" else self.up_op
                layer = op.make(self.channels, name, self.dtype_policy)
            setattr(self, attr, layer)
            self._roles[role] = attr

    def path_layers(self) -> dict:
        """The cell's weighted layers by role key (the same keys as `SearchCell.path_layers`)."""
        return {role: getattr(self, attr) for role, attr in self._roles.items()}

    def _layer(self, role):
        return getattr(self, self._roles[role])

    @property
    def skip_convs(self) -> list:
        """The 1x1 convs of the skip inputs, in ascending source order."""
        return [self._layer(("skip", s, "conv")) for s in self.sources]

    def build(self, input_shape):
        _, h, w, cin = input_shape
        c = self.channels
        for block, shape, upsample in ((1, (None, h, w, cin), True),
                                       (2, (None, 2 * h, 2 * w, c), False)):
            for role, s in _block_build_shapes(self.kind, shape, c, upsample).items():
                key = (f"block{block}",) + role
                if key in self._roles:
                    self._layer(key).build(s)
        for role in self._roles:
            if role[0] == "shortcut":
                self._layer(role).build((None, 2 * h, 2 * w, cin) if role[1] == "conv"
                                        else (None, h, w, cin))
            elif role[0] == "skip":
                if role[2] == "conv":
                    self._layer(role).build((None, 2 * h, 2 * w, c))
                else:
                    scale = 2 ** (role[3] + 1) / _skip_factor(self.cell_index, role[1])
                    self._layer(role).build((None, int(h * scale), int(w * scale), c))

    def _up_conv1x1(self, x, factor, role, conv):
        n_up = factor.bit_length() - 1
        layers = ([self._layer(role + (i,)) for i in range(n_up)]
                  if self.up_op.has_weights else [])
        return up_conv1x1(x, self.up_op, factor, layers, conv)

    def call(self, x, skips=(), training=False):
        def block(name, inputs, up_op):
            return conv_block(
                inputs, self.kind, self.norm_op, up_op,
                lambda role: self._layer((name,) + role), training)

        h = block("block1", x, self.up_op)
        size = int(h.shape[1])
        if self.sources:
            h = _add_convs(h, [(self._layer(("skip", s, "conv")),
                                lambda conv, s=s: self._up_conv1x1(
                                    skips[s], size // int(skips[s].shape[1]), ("skip", s, "up"),
                                    conv))
                               for s in self.sources])
        skip_out = h
        out = block("block2", h, None)
        if self.choice.shortcut:
            out = _add_convs(out, [(self._layer(("shortcut", "conv")),
                                    lambda conv: self._up_conv1x1(x, 2, ("shortcut", "up"),
                                                                  conv))])
        return skip_out, out

    def get_config(self):
        cfg = super().get_config()
        cfg.update(channels=self.channels, cell_index=self.cell_index, tokens=list(self.tokens))
        return cfg


# ----- weight inheritance ----------------------------------------------------------------------
def copy_layer_weights(src: keras.layers.Layer, dst: keras.layers.Layer) -> None:
    """Assigns `src`'s weights to `dst`'s, which must have the same shapes.

    Raises:
      ConfigError: if the layers' weights differ in number or shape.
    """
    if len(src.weights) != len(dst.weights):
        raise ConfigError(f"cannot copy {src.name} into {dst.name}: they hold "
                          f"{len(src.weights)} and {len(dst.weights)} weights")
    for s, d in zip(src.weights, dst.weights):
        if tuple(s.shape) != tuple(d.shape):
            raise ConfigError(f"cannot copy {s.path} {tuple(s.shape)} into {d.path} "
                              f"{tuple(d.shape)}; build both with the same channels")
        d.assign(s)


def inherit_cell_weights(search_cell: SearchCell, derived_cell: DerivedCell) -> None:
    """Copies the weights of `derived_cell`'s path through `search_cell` into it, by role key.

    Raises:
      ConfigError: if the cells differ in index or op table, or a layer differs in shape.
    """
    if search_cell.cell_index != derived_cell.cell_index:
        raise ConfigError(f"cannot inherit cell{derived_cell.cell_index} from supernet "
                          f"cell{search_cell.cell_index}")
    if search_cell.ops is not derived_cell.ops:
        raise ConfigError("the supernet cell and the derived cell read different op tables")
    src = search_cell.path_layers(derived_cell.tokens)
    dst = derived_cell.path_layers()
    if list(src) != list(dst):
        raise ConfigError(f"the supernet path {list(src)} and the derived cell "
                          f"{list(dst)} name different layers")
    for role, layer in dst.items():
        copy_layer_weights(src[role], layer)
