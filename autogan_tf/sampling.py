"""The one latent sampler: seeded, stateless latents and the images a generator makes of them.

Latent `i` of the sequence of `seed` is drawn in batches: a batch starting at offset `o` is
`stateless_normal([n, latent_dim], seed=[seed, o], alg="philox")`. Search rewards, training
evaluations, `evaluate --checkpoint/--saved_model` and the exported `generate(seed, n)`
signature (one batch at offset 0) all use it, so the same seed gives the same latents in every
process and on every device.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

__all__ = ["latents", "LatentSampler", "draw_images"]


def latents(seed, offset, num, latent_dim: int) -> tf.Tensor:
    """float32 [num, latent_dim]: the batch at `offset` of the latent sequence of `seed`.

    All arguments may be tensors (as inside an exported signature) or Python ints.
    """
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(offset, tf.int64)])
    shape = tf.stack([tf.cast(num, tf.int32), tf.constant(int(latent_dim), tf.int32)])
    return tf.random.stateless_normal(shape, seed=key, dtype=tf.float32, alg="philox")


class LatentSampler:
    """`sampler(n)`: the images `generate` makes of the next `n` latents of `seed`'s sequence.

    Args:
      generate: maps float32 latents [n, latent_dim] to images (a tensor or array).
      latent_dim: the latent size.
      seed: the sequence.
      batch_size: most latents per `generate` call; larger requests are split.
    """

    def __init__(self, generate: Callable, latent_dim: int, seed: int, batch_size: int = 100):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.generate = generate
        self.latent_dim = int(latent_dim)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.offset = 0

    def next_latents(self, n: int) -> tf.Tensor:
        z = latents(self.seed, self.offset, n, self.latent_dim)
        self.offset += n
        return z

    def __call__(self, n: int):
        if n < 1:
            raise ValueError(f"asked for {n} images; ask for at least one")
        out = [self.generate(self.next_latents(min(self.batch_size, n - done)))
               for done in range(0, n, self.batch_size)]
        return out[0] if len(out) == 1 else tf.concat(out, axis=0)


def draw_images(sampler: Callable[[int], object], num_images: int,
                batch_size: int = 100) -> np.ndarray:
    """`num_images` float images as one numpy array, drawn `batch_size` at a time."""
    out, done = [], 0
    while done < num_images:
        n = min(batch_size, num_images - done)
        out.append(np.asarray(sampler(n)))
        done += n
    return np.concatenate(out)
