"""The generator cells' op table: checkpoints and images of earlier code, roles, adding an op.

`tests/fixtures/generators/` was written before the op table existed (by
`tests/fixtures/generators_make_fixture.py.txt`, commit 430be4d): tiny supernet and derived
generator checkpoints, the sorted keys of those checkpoints and the images the generators made.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from autogan_tf import search_space as ss
from autogan_tf.errors import ConfigError
from autogan_tf.nn import cells, stats
from autogan_tf.nn.generators import DerivedGenerator, SharedGenerator

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "generators")
SIZE = dict(latent_dim=8, channels=8, bottom_width=2)

with open(os.path.join(FIXTURE, "checkpoint_keys.json")) as _f:
    _KEYS = json.load(_f)
ARCHS = {name: tuple(a) for name, a in _KEYS["archs"].items()}


@pytest.fixture(scope="module")
def golden():
    with np.load(os.path.join(FIXTURE, "golden.npz")) as data:
        return {k: data[k] for k in data}


def _make(name):
    return SharedGenerator(**SIZE) if name == "shared" else DerivedGenerator(ARCHS[name], **SIZE)


def _keys(prefix):
    return [[k, list(s)] for k, s in sorted(tf.train.list_variables(prefix))
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]


@pytest.mark.parametrize("name", ["shared", *ARCHS])
def test_checkpoint_object_paths_are_unchanged(name, tmp_path):
    prefix = tf.train.Checkpoint(model=_make(name)).write(str(tmp_path / "ckpt"))
    assert _keys(prefix) == _KEYS["keys"][name]


def _object_graph_edges(prefix):
    """Every (parent path, child name) of a checkpoint's object graph, shared objects too."""
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    reader = tf.train.load_checkpoint(prefix)
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    edges, paths, todo = set(), {0: ""}, [0]
    while todo:
        node = todo.pop()
        for child in graph.nodes[node].children:
            edges.add((paths[node], child.local_name))
            if child.node_id not in paths:
                paths[child.node_id] = f"{paths[node]}/{child.local_name}"
                todo.append(child.node_id)
    return edges


@pytest.mark.parametrize("name", ["shared", *ARCHS])
def test_checkpoint_object_graph_is_unchanged(name, tmp_path):
    # Stricter than the variable keys: no object (a list or dict the cells keep) may appear
    # in or vanish from the graph that `tf.train.Checkpoint` follows.
    prefix = tf.train.Checkpoint(model=_make(name)).write(str(tmp_path / "ckpt"))
    assert _object_graph_edges(prefix) == _object_graph_edges(os.path.join(FIXTURE, name, "ckpt"))


@pytest.mark.parametrize("name", ["shared", *ARCHS])
def test_weight_order_is_unchanged(name):
    # Optimizer slots are checkpointed by the index of their variable, and the EMA generator
    # pairs weights by position: the order of `weights` is part of the checkpoint format.
    assert [v.path for v in _make(name).weights] == _KEYS["weight_order"][name]


# Images of restored checkpoints are compared to 2e-5: the fixture was written on another CPU,
# and TensorFlow's deconvolution kernels round differently from one instruction set to another
# (1.5e-6 seen); a change to the cells moves images by orders of magnitude more.
_RESTORE_ATOL = 2e-5


@pytest.mark.parametrize("name", list(ARCHS))
def test_earlier_derived_checkpoint_restores_and_gives_the_same_images(name, golden):
    g = _make(name)
    tf.train.Checkpoint(model=g).read(os.path.join(FIXTURE, name, "ckpt")).assert_consumed()
    z = tf.constant(golden["latents"])
    for training in (False, True):
        np.testing.assert_allclose(g(z, training=training).numpy(),
                                   golden[f"{name}/{training}"], atol=_RESTORE_ATOL)


def test_earlier_supernet_checkpoint_restores_and_gives_the_same_images(golden):
    g = _make("shared")
    tf.train.Checkpoint(model=g).read(os.path.join(FIXTURE, "shared", "ckpt")).assert_consumed()
    z = tf.constant(golden["latents"])
    for training in (False, True):  # the order the fixture was written in
        g.set_stage(2)
        for name, arch in ARCHS.items():
            np.testing.assert_allclose(g(z, tf.constant(arch), training=training).numpy(),
                                       golden[f"shared/{name}/{training}"], atol=_RESTORE_ATOL)
        for stage in (0, 1):
            g.set_stage(stage)
            np.testing.assert_allclose(
                g(z, tf.constant(ARCHS["post_bn_deconv"]), training=training).numpy(),
                golden[f"shared/stage{stage}/{training}"], atol=_RESTORE_ATOL)


@pytest.mark.parametrize("index, name", list(enumerate(ARCHS)))
def test_seeded_construction_gives_the_same_initial_weights_as_before(index, name, golden):
    # Seeded runs keep starting from the same weights: layers draw their initialiser seeds in
    # the order the fixture's code created them.
    keras.utils.set_random_seed(30 + index)
    g = _make(name)
    np.testing.assert_allclose(g(tf.constant(golden["latents"])).numpy(),
                               golden[f"{name}/False"], atol=1e-6)
    keras.utils.set_random_seed(20)
    s = _make("shared")
    np.testing.assert_allclose(s(tf.constant(golden["latents"]), tf.constant(ARCHS[name])).numpy(),
                               golden[f"shared/{name}/False"], atol=1e-6)


# ----- the op table ------------------------------------------------------------------------------
def test_path_roles_name_every_weighted_layer_of_a_path():
    choice = ss.CellChoice(0, 1, 2, 1, 3)  # post-activation, BN, deconv, shortcut, both skips
    assert cells.path_roles(2, choice) == [
        ("block1", "norm"), ("block2", "norm"), ("block1", "up", 0),
        ("block1", "conv"), ("block2", "conv"), ("shortcut", "conv"), ("shortcut", "up", 0),
        ("skip", 0, "conv"), ("skip", 1, "conv"),
        ("skip", 0, "up", 0), ("skip", 0, "up", 1), ("skip", 1, "up", 0)]
    # instance norm and resizes have no weights; no shortcut, no skips
    assert cells.path_roles(2, ss.CellChoice(1, 2, 0, 0, 0)) == [
        ("block1", "conv"), ("block2", "conv")]
    supernet = cells.SearchCell(4, 2)
    supernet.build((None, 4, 4, 4))
    names = {role: layer.name for role, layer in supernet.path_layers((0, 1, 2, 1, 3)).items()}
    assert names == {
        ("block1", "norm"): "post1_bn", ("block2", "norm"): "post2_bn",
        ("block1", "up", 0): "post1_deconv", ("block1", "conv"): "post1_conv",
        ("block2", "conv"): "post2_conv", ("shortcut", "conv"): "sc_conv",
        ("shortcut", "up", 0): "sc_deconv", ("skip", 0, "conv"): "skip_conv_0",
        ("skip", 1, "conv"): "skip_conv_1", ("skip", 0, "up", 0): "skip_deconv_x4_0",
        ("skip", 0, "up", 1): "skip_deconv_x4_1", ("skip", 1, "up", 0): "skip_deconv_x2"}


def test_table_must_name_every_option_once():
    with pytest.raises(ConfigError, match=r"up entries \['bilinear', 'nearest'\] differ from "
                                          r"the search space's up options"):
        cells.OpTable.from_names(dict(zip(ss.CONV.options, cells.CELL_OPS.conv)),
                                 dict(zip(ss.NORM.options, cells.CELL_OPS.norm)),
                                 dict(zip(ss.UP.options[:2], cells.CELL_OPS.up)))
    with pytest.raises(ConfigError, match="has weights exactly when it has a key"):
        cells.Op("bn", lambda x, layer, training: x)


def test_tokens_outside_the_table_are_refused():
    with pytest.raises(ss.ArchitectureError, match=r"cell1 up is 3; it may take 0..2 "
                                                   r"\(0=bilinear, 1=nearest, 2=deconv\)"):
        cells.DerivedCell(4, 1, (1, 0, 3, 0, 0))
    with pytest.raises(ss.ArchitectureError, match=r"token 8 \(cell1 skip\) is 2"):
        cells.DerivedCell(4, 1, (1, 0, 1, 0, 2))
    with pytest.raises(ss.ArchitectureError, match="cell1 takes 5 tokens"):
        cells.SearchCell(4, 1).path_layers((1, 0, 1, 0))


class _SubPixelUp(keras.layers.Layer):
    """A test-only up op: 1x1 conv to 4x the channels, then depth-to-space (x2)."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4 * channels, 1, name="conv", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, x):
        return tf.nn.depth_to_space(self.conv(x), 2)


def _table_with_sub_pixel_up():
    """The search space's table plus one up op: the only edit adding an op needs."""
    up_token = ss.Token("up", ss.UP.options + ("sub-pixel",))
    return cells.OpTable.from_names(
        conv=dict(zip(ss.CONV.options, cells.CELL_OPS.conv)),
        norm=dict(zip(ss.NORM.options, cells.CELL_OPS.norm)),
        up={**dict(zip(ss.UP.options, cells.CELL_OPS.up)),
            "sub-pixel": cells.Op("subpixel", cells.CELL_OPS.up[2].apply,
                                  lambda c, name, dtype: _SubPixelUp(c, name=name, dtype=dtype))},
        tokens=(ss.CONV, ss.NORM, up_token))


@pytest.mark.parametrize("tokens", [(1, 1, 3, 1, 3), (0, 2, 3, 0, 2), (0, 1, 1, 1, 1)],
                         ids=["pre_bn_subpixel", "post_in_subpixel", "post_bn_nearest"])
def test_an_op_added_to_the_table_reaches_supernet_derived_cell_and_inheritance(tokens):
    table = _table_with_sub_pixel_up()
    keras.utils.set_random_seed(5)
    supernet = cells.SearchCell(4, 2, ops=table)
    supernet.build((None, 4, 4, 4))
    plain = cells.SearchCell(4, 2)
    plain.build((None, 4, 4, 4))
    # post1, pre1, post2, pre2, shortcut, skip x2, two for skip x4: 8 layers of 4*16 + 16
    assert stats.count_trainable_params(supernet) - stats.count_trainable_params(plain) == 8 * 80
    assert supernet.pre1_subpixel.name == "pre1_subpixel"

    derived = cells.DerivedCell(4, 2, tokens, ops=table)
    derived.build((None, 4, 4, 4))
    cells.inherit_cell_weights(supernet, derived)
    x = tf.random.stateless_normal([2, 4, 4, 4], seed=[6, 0])
    skips = (tf.random.stateless_normal([2, 2, 2, 4], seed=[6, 1]),
             tf.random.stateless_normal([2, 4, 4, 4], seed=[6, 2]))
    for training in (False, True):
        a = supernet(x, skips=skips, choice=tf.constant(tokens), training=training)
        b = derived(x, skips=skips, training=training)
        for u, v in zip(a, b):
            assert u.shape == (2, 8, 8, 4)
            np.testing.assert_allclose(u.numpy(), v.numpy(), atol=1e-5)
    n_sub = sum(isinstance(layer, _SubPixelUp) for layer in derived.path_layers().values())
    # sub-pixel: block 1, shortcut (if on), one per doubling of each skip input
    assert n_sub == {(1, 1, 3, 1, 3): 5, (0, 2, 3, 0, 2): 3, (0, 1, 1, 1, 1): 0}[tokens]
