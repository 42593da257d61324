"""Model statistics: trainable parameters and multiply-accumulates per image."""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

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


def count_macs(fn: Callable, input_shape, dtype=tf.float32) -> int:
    """Multiply-accumulates per example of `fn` (convs, transposed convs, matmuls).

    Traces `fn` at batch 1 and 2 and takes the difference, so per-batch constants (the spectral
    norm's power iteration) are not counted.
    """
    counts = []
    for batch in (1, 2):
        spec = tf.TensorSpec([batch, *input_shape], dtype)
        graph = tf.function(fn, autograph=False).get_concrete_function(spec).graph
        counts.append(_graph_macs(graph))
    return counts[1] - counts[0]


def generator_macs(generator) -> int:
    return count_macs(lambda z: generator(z, training=False), [generator.latent_dim])


def discriminator_macs(discriminator, resolution: int) -> int:
    return count_macs(lambda x: discriminator(x, training=False), [resolution, resolution, 3])
