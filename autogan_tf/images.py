"""Image conversions and grids: the one float-to-uint8 mapping, PNG grids, TensorBoard grids.

Generators emit float images in [-1, 1]; datasets, metrics (as published numbers were), PNG files
and TF Serving's `generate` signature use uint8. `to_uint8` is the one mapping between them:
`round((x + 1) * 127.5)`, clipped to 0..255; `from_uint8` is its inverse on the 256 levels.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

__all__ = ["to_uint8", "from_uint8", "quantize", "image_grid", "write_png", "log_image_grid"]


def to_uint8(images):
    """Float images in [-1, 1] (tensor or array) to uint8 0..255: rounded, clipped.

    Returns a tensor for a tensor input (usable inside `tf.function`), else a numpy array.
    """
    if isinstance(images, (tf.Tensor, tf.Variable)):
        x = tf.cast(images, tf.float32)
        return tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
    x = np.asarray(images, np.float32)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_uint8(images):
    """uint8 images (tensor or array) to float32 in [-1, 1]."""
    if isinstance(images, (tf.Tensor, tf.Variable)):
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return np.asarray(images, np.float32) / 127.5 - 1.0


def quantize(images):
    """Rounds float images in [-1, 1] to the 256 levels uint8 holds, staying float."""
    return from_uint8(to_uint8(images))


def image_grid(images, columns: int = 8, scale: int = 1, pad: int = 0) -> np.ndarray:
    """Tiles float images in [-1, 1] [N, H, W, C] into one uint8 image [rows*H, cols*W, C].

    Args:
      images: float images in [-1, 1].
      columns: images per row.
      scale: integer upscaling of each image (nearest), so small images stay readable.
      pad: pixels of white between images.
    """
    u8 = to_uint8(np.asarray(images))
    if scale > 1:
        u8 = u8.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, c = u8.shape
    columns = max(1, min(columns, n))
    rows = int(np.ceil(n / columns))
    grid = np.full([rows * (h + pad) + pad, columns * (w + pad) + pad, c], 255 if pad else 0,
                   np.uint8)
    for i in range(n):
        r, k = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y:y + h, x:x + w] = u8[i]
    return grid


def write_png(path: str, image: np.ndarray) -> str:
    """Writes a uint8 [H, W, C] image as PNG (atomically); returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    tf.io.write_file(tmp, tf.io.encode_png(np.asarray(image, np.uint8)))
    os.replace(tmp, path)
    return path


def grid_scale(resolution: int, target: int = 64) -> int:
    """The integer upscaling that shows images of `resolution` px at about `target` px."""
    return max(1, target // max(1, int(resolution)))


def log_image_grid(tag: str, images, step: int, png_path: str, columns: int = 8) -> str:
    """Writes a readable grid of `images` to the default TensorBoard writer and a PNG file.

    Small images are upscaled (nearest) to about 64 px each, with a 2 px border between them.
    """
    images = np.asarray(images)
    grid = image_grid(images, columns, scale=grid_scale(images.shape[1]), pad=2)
    tf.summary.image(tag, grid[None], step=step)
    return write_png(png_path, grid)
