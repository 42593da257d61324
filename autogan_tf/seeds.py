"""One source of randomness: every random stream of a run derives from its seed and a name.

A run has one integer seed (`--seed`). Each use of randomness takes its own named stream, and
indices (a search iteration, a step, a reset count) where a stream restarts at known points::

    seeds.derive(seed, "shared_init", resets)        # an int seed (Keras initialisers)
    seeds.numpy_rng(seed, "minibatch_archs", it)     # a numpy Generator
    seeds.tf_key(seed, "reward_latents", it, step)   # int64 [2] for TF stateless ops

The derivation hashes the seed, the stream's name and the indices (BLAKE2b), so streams are
independent, stable across processes and Python versions, and a resumed run re-creates exactly
the stream it was in. The names in use are listed in `STREAMS`; `derive` refuses others, so a
typo cannot silently share or fork a stream.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

__all__ = ["STREAMS", "derive", "numpy_rng", "tf_key"]

STREAMS = {
    # models
    "model_init": "weights of the models of a training run",
    "shared_init": "weights of the shared GAN of a search (index: dynamic resets so far)",
    "scratch_init": "weights of an architecture trained from scratch by random search without "
                    "weight sharing (index: iteration)",
    "controller_init": "weights of a stage's controller (index: stage)",
    # training
    "gan_latents": "latents of the GAN training steps",
    "data_order": "shuffling of the training data (index: where the pass starts)",
    "eval_latents": "fixed latents of periodic evaluations",
    "grid_latents": "fixed latents of sample grids",
    # search
    "oracle": "the oracle's trial-by-trial choices (prefixes, controller samples)",
    "minibatch_archs": "architectures of the shared-training minibatches (index: iteration)",
    "reward_latents": "latents of a child's reward (indices: iteration, step, kind)",
    "policy_eval": "architectures and latents of the policy evaluation (index: stage)",
    "random_search": "architectures drawn uniformly by the random-search baseline",
    "proxy": "architectures sampled for the proxy-validity study",
    # others
    "classifier_init": "the digits classifier's weights, split and batch order",
}

_MASK31 = 2**31 - 1


def derive(seed: int, stream: str, *indices: int) -> int:
    """A 31-bit non-negative seed for `stream` of the run seeded with `seed`.

    Args:
      seed: the run's seed (>= 0).
      stream: a name from `STREAMS`.
      *indices: integers that select a sub-stream (e.g. an iteration).

    Raises:
      KeyError: for a stream name not in `STREAMS`.
    """
    if stream not in STREAMS:
        raise KeyError(f"unknown random stream {stream!r}; add it to seeds.STREAMS")
    h = hashlib.blake2b(digest_size=8)
    h.update(struct.pack("<q", int(seed)))
    h.update(stream.encode())
    for i in indices:
        h.update(struct.pack("<q", int(i)))
    return int.from_bytes(h.digest(), "little") & _MASK31


def numpy_rng(seed: int, stream: str, *indices: int) -> np.random.Generator:
    """A numpy Generator for the stream."""
    return np.random.default_rng(derive(seed, stream, *indices))


def tf_key(seed: int, stream: str, *indices: int):
    """An int64 [2] key for TF's stateless random ops."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf.constant([derive(seed, stream, *indices), 0], tf.int64)
