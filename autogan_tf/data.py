"""Image datasets for AutoGAN: tf.data pipelines of float32 images in [-1, 1] at a chosen size.

Dataset names:

* ``cifar10``: the TFDS ``cifar10`` train split (50,000 images, 32 px).
* ``stl10``: the TFDS ``stl10`` train and unlabelled splits (105,000 images, 96 px, resized to
  48 px by default).
* ``digits``: scikit-learn's ``load_digits()`` (1,797 real 8x8 handwritten digits, 17 grey
  levels), grey replicated to RGB and resized to 16 px by default. It ships inside scikit-learn,
  so it works offline; it is the default for quick searches and tests.
* a folder of png/jpg images: ``name`` is a directory path, or ``folder:<path>``.
* an ``.npz`` of uint8 images: ``name`` ends in ``.npz``; the array under key ``images`` or the
  first array, laid out as :func:`autogan_tf.images.check_images` reads it: NHWC with 1 or 3
  channels, one image HWC (last axis 1 or 3), or grey NHW.

A missing, truncated or corrupt file, or an undecodable image in a folder, raises one
:class:`DatasetError` that names the file.

Example::

    ds = make_dataset("cifar10", resolution=32, batch_size=64, seed=0, data_dir="/data/tfds")
    images = next(iter(ds))  # float32 [64, 32, 32, 3] in [-1, 1]
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import socket
import zipfile
import zlib
from typing import Iterator

import numpy as np
import tensorflow as tf

from autogan_tf.images import check_images, from_uint8, to_uint8

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "DATASETS",
    "default_resolution",
    "make_dataset",
    "load_images",
    "load_digits_data",
    "resize_images",
    "open_npz",
    "read_npz_array",
    "check_dataset",
]

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
_SHUFFLE_BUFFER = 10_000
_LOAD_CHUNK = 1024
# What numpy raises for a truncated or corrupt .npz (a zip of .npy files), or another file type.
_NPZ_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)


from autogan_tf.errors import AutoGANError, DatasetError  # noqa: E402  (re-exported)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Facts about one named dataset.

    Attributes:
        name: The dataset name accepted by :func:`make_dataset`.
        native_resolution: Side of the stored images in pixels.
        default_resolution: Side used when no resolution is requested.
        num_images: Number of images in the splits used.
        tfds_name: TFDS builder name, or None for datasets not from TFDS.
        split: TFDS split expression, or None.
        download_host: Where TFDS downloads the data from (probed before a download, so an
            offline machine fails at once rather than after minutes of retries).
    """

    name: str
    native_resolution: int
    default_resolution: int
    num_images: int
    tfds_name: str | None = None
    split: str | None = None
    download_host: str | None = None


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo("cifar10", 32, 32, 50_000, "cifar10", "train", "www.cs.toronto.edu"),
    "stl10": DatasetInfo("stl10", 96, 48, 105_000, "stl10", "train+unlabelled",
                         "ai.stanford.edu"),
    "digits": DatasetInfo("digits", 8, 16, 1_797),
}


def _source_kind(name: str) -> tuple[str, str]:
    """Returns (kind, argument) for a dataset name: kind is tfds, digits, folder or npz."""
    if not isinstance(name, str) or not name:
        raise DatasetError(f"A dataset name must be a non-empty string, got {name!r}.")
    if name in DATASETS:
        return ("digits", name) if name == "digits" else ("tfds", name)
    if name.startswith("folder:"):
        return "folder", name[len("folder:"):]
    if name.lower().endswith(".npz"):
        return "npz", name
    if os.path.isdir(name):
        return "folder", name
    raise DatasetError(
        f"Unknown dataset {name!r}: use one of {sorted(DATASETS)}, a folder of png/jpg images "
        "(a directory path or 'folder:<path>') or an .npz file of uint8 images."
    )


def default_resolution(name: str) -> int:
    """Returns the default image side for a dataset.

    For named datasets this is the entry in :data:`DATASETS`; for a folder or an ``.npz`` it is the
    height of the first stored image.

    Args:
        name: A dataset name as accepted by :func:`make_dataset`.

    Returns:
        The side in pixels.

    Raises:
        DatasetError: If the dataset is unknown or cannot be read.
    """
    kind, arg = _source_kind(name)
    if kind in ("tfds", "digits"):
        return DATASETS[arg].default_resolution
    if kind == "npz":
        return int(_load_npz(arg).shape[1])
    files = _list_image_files(arg)
    return int(_decode_file(files[0]).shape[0])


def resize_images(images: tf.Tensor, resolution: int) -> tf.Tensor:
    """Resizes a batch of images to ``resolution`` x ``resolution`` as float32.

    Shrinking uses area averaging (anti-aliased); enlarging uses bilinear interpolation.
    Values keep their scale (e.g. 0..255 stays 0..255).

    Args:
        images: [N, H, W, C] images of any numeric dtype.
        resolution: The output side in pixels.

    Returns:
        A float32 tensor [N, resolution, resolution, C].
    """
    images = tf.cast(images, tf.float32)
    height = images.shape[1]
    if height is not None and height == resolution and images.shape[2] == resolution:
        return images
    if height is not None and height > resolution:
        return tf.image.resize(images, [resolution, resolution], method="area", antialias=True)
    return tf.image.resize(images, [resolution, resolution], method="bilinear", antialias=True)


def _to_unit_range(images: tf.Tensor) -> tf.Tensor:
    """Maps 0..255 float images (e.g. resized uint8) to [-1, 1]."""
    return tf.clip_by_value(from_uint8(images), -1.0, 1.0)


def _rounded_uint8(images: tf.Tensor) -> np.ndarray:
    """Rounds 0..255 float images (e.g. resized uint8) to uint8 numpy.

    Rounding happens on the 0..255 scale (ties to even, as always), so exact ties such as the
    127.5 of an area average stay where they were; `to_uint8` is exact on whole levels.
    """
    return to_uint8(_to_unit_range(tf.round(images))).numpy()


# ----------------------------------------------------------------------------- digits


def load_digits_data(resolution: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Returns scikit-learn's 1,797 digits as uint8 RGB images and their labels.

    The 0..16 grey levels are scaled to 0..255, replicated to three channels and resized.

    Args:
        resolution: Output side in pixels (the native side is 8).

    Returns:
        ``(images, labels)``: uint8 [1797, resolution, resolution, 3] and int64 [1797].
    """
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

    digits = load_digits()
    grey = digits.images.astype(np.float32) * (255.0 / 16.0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    images = _rounded_uint8(resize_images(tf.constant(rgb), resolution))
    return images, digits.target.astype(np.int64)


def _digits_native() -> np.ndarray:
    from sklearn.datasets import load_digits  # pylint: disable=import-outside-toplevel

    grey = np.round(load_digits().images * (255.0 / 16.0)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


# ----------------------------------------------------------------------------- npz and folders


@contextlib.contextmanager
def open_npz(path: str, error: type = DatasetError) -> Iterator[np.lib.npyio.NpzFile]:
    """Opens an .npz for reading; any failure to read it, then or inside the block, is `error`.

    A missing file, a truncated or corrupt archive (``BadZipFile``, a bad CRC, an early end of
    file) or a file of another type all become one line naming the file, instead of a traceback.

    Args:
        path: The ``.npz`` file.
        error: The ``AutoGANError`` subclass to raise (``DatasetError``, ``StatsError``, ...).

    Yields:
        The open ``NpzFile`` (``allow_pickle=False``).
    """
    if not os.path.isfile(path):
        raise error(f"No such .npz file: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise error(f"{path}: a single .npy array, not an .npz archive; save it with "
                        "numpy.savez(path, images=array).")
        with loaded:
            yield loaded
    except _NPZ_READ_ERRORS as err:
        if isinstance(err, AutoGANError):  # Raised on purpose, here or in the caller's block.
            raise
        raise error(f"{path}: cannot read the .npz file ({type(err).__name__}: {err}); it is "
                    "truncated, corrupt or not an .npz archive. Write it again.") from err


def read_npz_array(path: str, error: type = DatasetError) -> np.ndarray:
    """The `images` array of an .npz (else its first array), unconverted.

    Raises:
        error: If the file is missing, truncated, corrupt or empty.
    """
    with open_npz(path, error) as arrays:
        keys = list(arrays.keys())
        if not keys:
            raise error(f"{path}: the .npz file holds no arrays.")
        return arrays["images"] if "images" in keys else arrays[keys[0]]


def _load_npz(path: str) -> np.ndarray:
    return check_images(read_npz_array(path), path, DatasetError, allow_float=False)


def _list_image_files(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise DatasetError(f"No such image folder: {folder}")
    files = sorted(
        path
        for path in glob.glob(os.path.join(folder, "**", "*"), recursive=True)
        if path.lower().endswith(_IMAGE_EXTENSIONS) and os.path.isfile(path)
    )
    if not files:
        raise DatasetError(f"{folder}: no .png/.jpg/.jpeg images found.")
    return files


def _decode(contents: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _decode_file(path: str) -> tf.Tensor:
    try:
        return _decode(tf.io.read_file(path))
    except tf.errors.OpError as err:
        raise DatasetError(f"{path}: cannot decode image ({err.message.splitlines()[0]}). "
                           "Remove or replace the file.") from err


def _undecodable_file_error(folder: str, err: tf.errors.OpError) -> DatasetError:
    """The error for a folder whose pipeline failed: names the first file that does not decode."""
    for path in _list_image_files(folder):
        try:
            _decode_file(path)
        except DatasetError as found:
            return found
    return DatasetError(f"{folder}: reading the images failed ({err.message.splitlines()[0]}).")


def _folder_dataset(folder: str, resolution: int) -> tuple[tf.data.Dataset, int]:
    files = _list_image_files(folder)

    def load(path: tf.Tensor) -> tf.Tensor:
        image = _decode(tf.io.read_file(path))
        return resize_images(image[None], resolution)[0]

    ds = tf.data.Dataset.from_tensor_slices(files).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds, len(files)


# ----------------------------------------------------------------------------- TFDS


def _tfds_default_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _check_reachable(host: str | None, timeout_s: float = 5.0) -> None:
    """Raises ConnectionError at once when `host` cannot be reached on port 443."""
    if not host:
        return
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as err:
        raise ConnectionError(f"cannot reach {host} ({err})") from err


def _tfds_dataset(name: str, data_dir: str | None, download: bool) -> tf.data.Dataset:
    """Loads a TFDS split as a dataset of uint8 images, or raises one clear DatasetError."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    info = DATASETS[name]

    def load(download_now: bool):
        return tfds.load(info.tfds_name, split=info.split, data_dir=data_dir,
                         download=download_now, shuffle_files=False)

    try:
        try:
            ds = load(False)
        except Exception:  # pylint: disable=broad-except  (not prepared in data_dir)
            if not download:
                raise
            _check_reachable(info.download_host)
            ds = load(True)
    except Exception as err:  # TFDS raises AssertionError, network and import errors here.
        where = data_dir or _tfds_default_dir()
        target = data_dir or "~/tensorflow_datasets"
        raise DatasetError(
            f"Dataset {name!r} (TFDS '{info.tfds_name}', split '{info.split}') was not found in "
            f"{where} and could not be downloaded ({type(err).__name__}: {err}). "
            f"To prepare it, run `tfds build {info.tfds_name} --data_dir={target}` on a machine "
            f"with internet access, copy the folder {target}/{info.tfds_name} to this machine, "
            "and pass its parent directory as data_dir (--data_dir)."
        ) from err
    return ds.map(lambda example: example["image"], num_parallel_calls=tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- public API


def _source_dataset(
    name: str, resolution: int, data_dir: str | None, download: bool
) -> tuple[tf.data.Dataset, int | None, bool]:
    """Returns (dataset of single images, count or None, resized_already)."""
    kind, arg = _source_kind(name)
    if kind == "digits":
        images = _digits_native()
        return tf.data.Dataset.from_tensor_slices(images), len(images), False
    if kind == "npz":
        images = _load_npz(arg)
        return tf.data.Dataset.from_tensor_slices(images), len(images), False
    if kind == "folder":
        ds, count = _folder_dataset(arg, resolution)
        return ds, count, True
    return _tfds_dataset(arg, data_dir, download), DATASETS[arg].num_images, False


def _check_resolution(resolution: int) -> None:
    if not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise DatasetError(f"resolution must be a positive integer, got {resolution!r}.")


def make_dataset(
    name: str,
    resolution: int,
    batch_size: int,
    seed: int = 0,
    data_dir: str | None = None,
    repeat: bool = True,
    *,
    download: bool = True,
) -> tf.data.Dataset:
    """Builds a shuffled, batched pipeline of float32 images in [-1, 1].

    Args:
        name: ``cifar10``, ``stl10``, ``digits``, an image folder (path or ``folder:<path>``) or a
            path ending in ``.npz``.
        resolution: Output side in pixels.
        batch_size: Images per batch; the last partial batch is dropped.
        seed: Shuffle seed; the same seed gives the same order.
        data_dir: TFDS data directory (TFDS datasets only); default ``~/tensorflow_datasets``.
        repeat: Whether to repeat forever (reshuffling each pass).
        download: Whether TFDS may try to download a missing dataset.

    Returns:
        A dataset of float32 tensors [batch_size, resolution, resolution, 3] in [-1, 1].

    Raises:
        DatasetError: If the dataset is unknown, missing or malformed, or the sizes are invalid.
    """
    _check_resolution(resolution)
    if batch_size < 1:
        raise DatasetError(f"batch_size must be positive, got {batch_size}.")
    ds, count, resized = _source_dataset(name, resolution, data_dir, download)
    if count is not None and count < batch_size:
        raise DatasetError(
            f"Dataset {name!r} has {count} images, fewer than one batch of {batch_size}."
        )
    buffer = min(count or _SHUFFLE_BUFFER, _SHUFFLE_BUFFER)
    ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=True)

    def to_model_input(images: tf.Tensor) -> tf.Tensor:
        images = tf.cast(images, tf.float32) if resized else resize_images(images, resolution)
        return _to_unit_range(images)

    ds = ds.map(to_model_input, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _iterate_uint8(
    name: str, resolution: int, data_dir: str | None, download: bool
) -> Iterator[np.ndarray]:
    ds, _, resized = _source_dataset(name, resolution, data_dir, download)
    ds = ds.batch(_LOAD_CHUNK)
    if not resized:
        ds = ds.map(lambda images: resize_images(images, resolution))
    chunks = iter(ds.prefetch(2))
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except tf.errors.OpError as err:
            kind, arg = _source_kind(name)
            if kind == "folder":
                raise _undecodable_file_error(arg, err) from err
            raise DatasetError(f"Dataset {name!r}: reading the images failed "
                               f"({err.message.splitlines()[0]}).") from err
        yield _rounded_uint8(tf.cast(chunk, tf.float32))


def load_images(
    name: str,
    resolution: int,
    max_images: int | None = None,
    data_dir: str | None = None,
    *,
    download: bool = True,
) -> np.ndarray:
    """Loads a dataset's images, in stored order, as uint8 at the given size.

    The resize is the one :func:`make_dataset` applies, followed by rounding.

    Args:
        name: A dataset name as accepted by :func:`make_dataset`.
        resolution: Output side in pixels.
        max_images: Keep at most this many images (all when None).
        data_dir: TFDS data directory (TFDS datasets only).
        download: Whether TFDS may try to download a missing dataset.

    Returns:
        uint8 array [N, resolution, resolution, 3].

    Raises:
        DatasetError: If the dataset is unknown, missing or malformed.
    """
    _check_resolution(resolution)
    chunks: list[np.ndarray] = []
    total = 0
    for chunk in _iterate_uint8(name, resolution, data_dir, download):
        if max_images is not None and total + len(chunk) >= max_images:
            chunks.append(chunk[: max_images - total])
            total = max_images
            break
        chunks.append(chunk)
        total += len(chunk)
    if not chunks or total == 0:
        raise DatasetError(f"Dataset {name!r} yielded no images.")
    return np.concatenate(chunks, axis=0)


def check_dataset(
    name: str, resolution: int, data_dir: str | None = None, sample: int = 32
) -> int | None:
    """Checks, before a run writes anything, that a dataset can be read; returns its size.

    A folder's first ``sample`` files are decoded (so one unreadable file is found now, not
    hours into training); an ``.npz`` is read and its shape checked; a TFDS dataset is opened.

    Args:
        name: A dataset name as accepted by :func:`make_dataset`.
        resolution: The side the run will use.
        data_dir: TFDS data directory.
        sample: How many files of a folder to decode.

    Returns:
        The number of images, or None when unknown.

    Raises:
        DatasetError: Naming the dataset (or the file) and what to do.
    """
    _check_resolution(resolution)
    kind, arg = _source_kind(name)
    if kind == "folder":
        files = _list_image_files(arg)
        for path in files[:sample]:
            _decode_file(path)
        return len(files)
    _, count, _ = _source_dataset(name, resolution, data_dir, download=True)
    return count
