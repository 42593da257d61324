"""The generator cells' op table: checkpoints and images of earlier code, and adding an op.

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


@pytest.mark.parametrize("name", list(ARCHS))
def test_earlier_derived_checkpoint_restores_and_gives_the_same_images(name, golden):
    g = _make(name)
    tf.train.Checkpoint(model=g).read(os.path.join(FIXTURE, name, "ckpt")).assert_consumed()
    z = tf.constant(golden["latents"])
    for training in (False, True):
        np.testing.assert_allclose(g(z, training=training).numpy(),
                                   golden[f"{name}/{training}"], atol=1e-6)


def test_earlier_supernet_checkpoint_restores_and_gives_the_same_images(golden):
    g = _make("shared")
    tf.train.Checkpoint(model=g).read(os.path.join(FIXTURE, "shared", "ckpt")).assert_consumed()
    z = tf.constant(golden["latents"])
    for training in (False, True):  # the order the fixture was written in
        g.set_stage(2)
        for name, arch in ARCHS.items():
            np.testing.assert_allclose(g(z, tf.constant(arch), training=training).numpy(),
                                       golden[f"shared/{name}/{training}"], atol=1e-6)
        for stage in (0, 1):
            g.set_stage(stage)
            np.testing.assert_allclose(
                g(z, tf.constant(ARCHS["post_bn_deconv"]), training=training).numpy(),
                golden[f"shared/stage{stage}/{training}"], atol=1e-6)


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
