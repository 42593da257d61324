"""Image conversions, checks and grids: the one float-to-uint8 mapping, the one image check.

Generators emit float images in [-1, 1]; datasets, metrics (as published numbers were), PNG files
and TF Serving's `generate` signature use uint8. `to_uint8` is the one mapping between them:
`round((x + 1) * 127.5)`, clipped to 0..255; `from_uint8` is its inverse on the 256 levels.
`check_images` is the one place that decides what an image array may look like (layout, dtype,
range, finiteness), for datasets, image files and generator batches alike.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from autogan_tf import errors

__all__ = ["to_uint8", "from_uint8", "quantize", "image_grid", "write_png", "log_image_grid",
           "RANGE_TOLERANCE", "check_images", "check_image_values"]

# How far float images may stray outside [-1, 1] (float rounding of a tanh) and still count.
RANGE_TOLERANCE = 1e-3


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


# ----------------------------------------------------------------------------- checks


def _dtype(images) -> tf.DType | None:
    try:
        return tf.as_dtype(images.dtype)
    except TypeError:  # strings, objects: no image dtype
        return None


def check_images(images, source: str, error: type = errors.EvaluationError, *,
                 allow_float: bool = True, check_values: bool = True):
    """Checks an image array (numpy or tensor) and returns it as [N, H, W, 3].

    The layout rule, the same for `.npz` files, arrays and generator batches: 4-D is NHWC with
    1 or 3 channels; a 3-D array whose last axis is 1 or 3 is one image HWC; any other 3-D
    array is grey NHW. Grey images are replicated to 3 channels. Values are uint8 in 0..255 or
    (with `allow_float`) float in [-1, 1], within `RANGE_TOLERANCE`.

    Args:
      images: a numpy array or a tensor.
      source: names the images in messages (a file, "sample_fn output", ...).
      error: the `AutoGANError` subclass raised for a wrong shape, dtype or range.
      allow_float: accept float images in [-1, 1] (else uint8 only).
      check_values: also check finiteness and range (see `check_image_values`).

    Returns:
      The images [N, H, W, 3], of the kind given; float numpy arrays come back as float32.

    Raises:
      error: for a wrong shape, an empty array, a wrong dtype or values out of range.
      errors.NonFiniteError: for float images holding NaN or Inf.
    """
    shape = tuple(images.shape)
    if len(shape) == 3:
        images = images[None] if shape[-1] in (1, 3) else images[..., None]
    elif len(shape) != 4 or shape[-1] not in (1, 3):
        raise error(f"{source}: expected images [N, H, W, 3] or [N, H, W, 1], one image "
                    f"[H, W, 3], or grey images [N, H, W]; got shape {shape}.")
    if 0 in tuple(images.shape)[:3]:
        raise error(f"{source}: holds no images (shape {shape}).")
    dtype = _dtype(images)
    if dtype != tf.uint8 and not (allow_float and dtype is not None and dtype.is_floating):
        wanted = "uint8 images in 0..255" + (" or float images in [-1, 1]" if allow_float else "")
        raise error(f"{source}: expected {wanted}, got dtype {images.dtype}.")
    if images.shape[-1] == 1:
        images = (np.repeat(images, 3, axis=-1) if isinstance(images, np.ndarray)
                  else tf.repeat(images, 3, axis=-1))
    if isinstance(images, np.ndarray) and dtype != tf.uint8:
        images = images.astype(np.float32, copy=False)
    if check_values:
        check_image_values(images, source, error)
    return images


def check_image_values(images, source: str, error: type = errors.EvaluationError) -> None:
    """Refuses float images [N, H, W, C] with NaN or Inf, or values outside [-1, 1].

    uint8 images always pass. For a tensor the reductions run where it lives and only three
    numbers come back.

    Raises:
      errors.NonFiniteError: naming how many of the images hold NaN or Inf.
      error: naming the range found.
    """
    if _dtype(images) == tf.uint8:
        return
    if isinstance(images, np.ndarray):
        flat = images.reshape(len(images), -1)
        bad = int(np.count_nonzero(~np.isfinite(flat).all(axis=1)))
        low, high = (float(flat.min()), float(flat.max())) if not bad else (0.0, 0.0)
    else:
        x = tf.cast(images, tf.float32)
        finite = tf.reduce_all(tf.math.is_finite(x), axis=tf.range(1, tf.rank(x)))
        stats = tf.stack([tf.reduce_sum(1.0 - tf.cast(finite, tf.float32)),
                          tf.reduce_min(x), tf.reduce_max(x)]).numpy()
        bad, low, high = int(stats[0]), float(stats[1]), float(stats[2])
    if bad:
        raise errors.NonFiniteError(
            f"{source}: {bad} of {int(images.shape[0])} images hold NaN or Inf values. They "
            "cannot be scored; a generator that makes them has diverged (use an earlier "
            "checkpoint).")
    if low < -1 - RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise error(f"{source}: float images must lie in [-1, 1], found values in "
                    f"[{low:.4g}, {high:.4g}] (uint8 images in 0..255 are accepted as dtype "
                    "uint8).")
