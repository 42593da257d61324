"""Model statistics: trainable parameters and multiply-accumulates per image.

MACs count the convs, transposed convs and matmuls of the traced graph. By default the graph
is traced inside `layers.unfolded()`, so the count is that of the model as defined (the
reference's op order, comparable with the paper's figures); `folded=True` counts what the
project computes (the folded kernels of `nn/layers.py`: fewer).
"""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import tensorflow as tf

from autogan_tf.nn import layers as L

__all__ = ["count_trainable_params", "count_macs", "generator_macs", "discriminator_macs"]


def count_trainable_params(model) -> int:
    """Number of trainable scalars (what PyTorch's `parameters()` counts)."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _graph_macs(graph) -> int:
    total = 0
    for op in graph.get_operations():
        t = op.type
        if t == "Conv2D":
            out = op.outputs[0].shape.as_list()
            kh, kw, cin, _ = op.inputs[1].shape.as_list()
            total += int(np.prod(out)) * kh * kw * cin
        elif t == "Conv2DBackpropInput":  # transposed convolution
            kh, kw, cout, cin = op.inputs[1].shape.as_list()
            low = op.inputs[2].shape.as_list()
            total += int(np.prod(low[:3])) * kh * kw * cin * cout
        elif t in ("MatMul", "BatchMatMulV2"):
            a, b = op.inputs[0].shape.as_list(), op.inputs[1].shape.as_list()
            ta, tb = op.get_attr("transpose_a") if t == "MatMul" else False, (
                op.get_attr("transpose_b") if t == "MatMul" else False)
            m = a[-1] if ta else a[-2]
            k = a[-2] if ta else a[-1]
            n = b[-2] if tb else b[-1]
            total += m * k * n
    return total


def count_macs(fn: Callable, input_shape, dtype=tf.float32, folded: bool = False) -> int:
    """Multiply-accumulates per example of `fn` (convs, transposed convs, matmuls).

    Traces `fn` at batch 1 and 2 and takes the difference, so per-batch constants (the spectral
    norm's power iteration, folding the kernels) are not counted. `folded`: count the graph
    the project runs instead of the model as defined (module docstring).
    """
    counts = []
    for batch in (1, 2):
        spec = tf.TensorSpec([batch, *input_shape], dtype)
        with contextlib.nullcontext() if folded else L.unfolded():
            graph = tf.function(fn, autograph=False).get_concrete_function(spec).graph
        counts.append(_graph_macs(graph))
    return counts[1] - counts[0]


def generator_macs(generator, folded: bool = False) -> int:
    return count_macs(lambda z: generator(z, training=False), [generator.latent_dim],
                      folded=folded)


def discriminator_macs(discriminator, resolution: int, folded: bool = False) -> int:
    return count_macs(lambda x: discriminator(x, training=False), [resolution, resolution, 3],
                      folded=folded)
