"""Tests of autogan_tf.data: the named datasets, image folders, .npz files and their errors."""

import os

import numpy as np
import pytest
import tensorflow as tf

from autogan_tf import data


def _write_png(path, image):
    tf.io.write_file(str(path), tf.io.encode_png(tf.constant(image, tf.uint8)))


# ----------------------------------------------------------------------------- digits


def test_digits_batches_shape_dtype_range():
    batch = next(iter(data.make_dataset("digits", 16, 32, seed=0)))
    assert batch.shape == (32, 16, 16, 3)
    assert batch.dtype == tf.float32
    values = batch.numpy()
    assert values.min() == pytest.approx(-1.0) and values.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(values[..., 0], values[..., 2])  # Grey replicated to RGB.


def test_digits_count_and_native_values():
    from sklearn.datasets import load_digits

    images = data.load_images("digits", 8)
    assert images.shape == (1797, 8, 8, 3) and images.dtype == np.uint8
    expected = np.round(load_digits().images * 255.0 / 16.0).astype(np.uint8)
    np.testing.assert_array_equal(images[..., 1], expected)
    images16, labels = data.load_digits_data(16)
    assert images16.shape == (1797, 16, 16, 3) and labels.shape == (1797,)
    assert set(np.unique(labels)) == set(range(10))


def test_default_resolutions():
    assert data.default_resolution("digits") == 16
    assert data.default_resolution("cifar10") == 32
    assert data.default_resolution("stl10") == 48
    assert data.DATASETS["stl10"].native_resolution == 96


def test_seed_fixes_order_and_drop_remainder():
    first = next(iter(data.make_dataset("digits", 8, 16, seed=3))).numpy()
    again = next(iter(data.make_dataset("digits", 8, 16, seed=3))).numpy()
    other = next(iter(data.make_dataset("digits", 8, 16, seed=4))).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    batches = list(data.make_dataset("digits", 8, 500, repeat=False))
    assert len(batches) == 1797 // 500
    assert all(b.shape[0] == 500 for b in batches)


def test_resize_area_averages_when_shrinking():
    checker = np.indices((4, 4)).sum(axis=0) % 2 * 255.0
    out = data.resize_images(checker[None, ..., None], 2).numpy()
    np.testing.assert_allclose(out, 127.5, atol=1e-3)


# ----------------------------------------------------------------------------- TFDS


def test_cifar10_through_tfds(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=8):
        batch = next(iter(data.make_dataset("cifar10", 32, 4, data_dir=str(tmp_path))))
        small = next(iter(data.make_dataset("cifar10", 16, 4, data_dir=str(tmp_path))))
        images = data.load_images("cifar10", 8, max_images=5, data_dir=str(tmp_path))
    assert batch.shape == (4, 32, 32, 3) and small.shape == (4, 16, 16, 3)
    for values in (batch.numpy(), small.numpy()):
        assert values.min() >= -1.0 and values.max() <= 1.0
    # Random uint8 mock images at native size span the whole range.
    assert batch.numpy().min() < -0.95 and batch.numpy().max() > 0.95
    assert images.shape == (5, 8, 8, 3) and images.dtype == np.uint8


def test_stl10_through_tfds_default_48(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        ds = data.make_dataset("stl10", data.default_resolution("stl10"), 2, data_dir=str(tmp_path))
        batch = next(iter(ds)).numpy()
    assert batch.shape == (2, 48, 48, 3)
    assert -1.0 <= batch.min() and batch.max() <= 1.0


def test_missing_tfds_dataset_error_says_where_and_how(tmp_path):
    where = str(tmp_path / "tfds")
    with pytest.raises(data.DatasetError, match="Dataset 'cifar10' .* was not found") as info:
        data.make_dataset("cifar10", 32, 4, data_dir=where, download=False)
    message = str(info.value)
    assert where in message
    assert "tfds build cifar10 --data_dir=" in message
    assert "copy" in message


def test_missing_tfds_dataset_default_dir_named(monkeypatch, tmp_path):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    if os.path.exists(os.path.expanduser("~/tensorflow_datasets/stl10")):
        pytest.skip("stl10 is prepared on this machine")
    with pytest.raises(data.DatasetError, match="tensorflow_datasets"):
        data.load_images("stl10", 48, max_images=1, download=False)


# ----------------------------------------------------------------------------- folders and npz


def test_folder_loader_resizes_mixed_sizes(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    for i, colour in enumerate(colours):
        side = 10 if i % 2 else 12
        _write_png(tmp_path / f"img{i}.png", np.full((side, side, 3), colour, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    images = data.load_images(f"folder:{tmp_path}", 8)
    assert images.shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(images[:, 3, 3], np.array(colours, np.uint8))
    assert data.default_resolution(str(tmp_path)) == 12  # Side of the first file.
    batches = list(data.make_dataset(str(tmp_path), 8, 2, repeat=False))
    assert len(batches) == 2 and batches[0].shape == (2, 8, 8, 3)
    assert batches[0].numpy().min() == -1.0 and batches[0].numpy().max() == 1.0


def test_npz_loader_rgb_and_grey(tmp_path, rng):
    rgb = rng.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "rgb.npz", other=np.zeros(3), images=rgb)
    np.testing.assert_array_equal(data.load_images(str(tmp_path / "rgb.npz"), 12), rgb)
    grey = rng.integers(0, 256, (5, 12, 12), dtype=np.uint8)
    np.savez(tmp_path / "grey.npz", grey)  # Stored as the first (unnamed) array.
    out = data.load_images(str(tmp_path / "grey.npz"), 6)
    assert out.shape == (5, 6, 6, 3)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    batch = next(iter(data.make_dataset(str(tmp_path / "rgb.npz"), 12, 3)))
    assert batch.shape == (3, 12, 12, 3)


@pytest.mark.parametrize(
    "shape, count",
    [
        ((64, 64, 3), 1),  # One RGB image, not 64 grey images of 64 x 3.
        ((64, 64, 1), 1),  # One grey image with a channel axis.
        ((5, 64, 64), 5),  # Grey images without a channel axis.
        ((2, 64, 64, 1), 2),
        ((2, 64, 64, 3), 2),
    ],
)
def test_npz_shapes_are_parsed_exactly(tmp_path, shape, count):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.savez(tmp_path / "x.npz", images=array)
    images = data.load_images(str(tmp_path / "x.npz"), 64)
    assert images.shape == (count, 64, 64, 3)
    np.testing.assert_array_equal(images[..., 2], array.reshape(count, 64, 64, -1)[..., -1])
    assert data.default_resolution(str(tmp_path / "x.npz")) == 64


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((4, 8, 8, 3), np.float32), "expected uint8 images in 0..255, got dtype float32"),
        (np.zeros((4, 8, 8, 2), np.uint8), r"got shape \(4, 8, 8, 2\)"),
        (np.zeros((8, 8), np.uint8), r"got shape \(8, 8\)"),
        (np.zeros((1, 2, 8, 8, 3), np.uint8), r"got shape \(1, 2, 8, 8, 3\)"),
        (np.zeros((0, 8, 8, 3), np.uint8), "holds no images"),
    ],
)
def test_npz_bad_arrays(tmp_path, array, match):
    path = tmp_path / "bad.npz"
    np.savez(path, images=array)
    with pytest.raises(data.DatasetError, match=match):
        data.load_images(str(path), 8)


def test_truncated_or_foreign_npz_is_one_dataset_error(tmp_path):
    np.savez(tmp_path / "good.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    whole = (tmp_path / "good.npz").read_bytes()
    for cut in (len(whole) // 2, len(whole) - 30):  # Before and inside the zip directory.
        (tmp_path / "cut.npz").write_bytes(whole[:cut])
        with pytest.raises(data.DatasetError,
                           match=r"cut.npz: cannot read the .npz file \(.*\); it is truncated"):
            data.load_images(str(tmp_path / "cut.npz"), 8)
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(data.DatasetError, match="text.npz: cannot read the .npz file"):
        data.load_images(str(tmp_path / "text.npz"), 8)
    with open(tmp_path / "single.npz", "wb") as f:
        np.save(f, np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(data.DatasetError, match="a single .npy array, not an .npz archive"):
        data.load_images(str(tmp_path / "single.npz"), 8)
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(data.DatasetError, match="holds no arrays"):
        data.read_npz_array(str(tmp_path / "empty.npz"))


def _folder_with_a_corrupt_png(path):
    """Three good 10 px images and, sorted between them, one png that does not decode."""
    path.mkdir()
    for name in ("a.png", "b.png", "d.png"):
        _write_png(path / name, np.full((10, 10, 3), 200, np.uint8))
    (path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return path


def test_check_dataset_decodes_a_sample_of_a_folder(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        _write_png(good / f"{i}.png", np.zeros((10, 10, 3), np.uint8))
    assert data.check_dataset(str(good), 8) == 3
    bad = _folder_with_a_corrupt_png(tmp_path / "bad")
    with pytest.raises(data.DatasetError, match=r"c.png: cannot decode image .*Remove or replace"):
        data.check_dataset(str(bad), 8)
    assert data.check_dataset(str(bad), 8, sample=2) == 4  # c.png is third: not in the sample.
    assert data.check_dataset("digits", 16) == 1797
    with pytest.raises(data.DatasetError, match="resolution must be a positive integer"):
        data.check_dataset("digits", 0)


def test_undecodable_file_met_while_loading_is_named(tmp_path):
    bad = _folder_with_a_corrupt_png(tmp_path / "bad")
    with pytest.raises(data.DatasetError, match=r"c.png: cannot decode image"):
        data.load_images(str(bad), 8)


def test_bad_names_and_sizes(tmp_path):
    with pytest.raises(data.DatasetError, match="Unknown dataset"):
        data.make_dataset("imagenet", 32, 4)
    with pytest.raises(data.DatasetError, match="No such .npz"):
        data.load_images(str(tmp_path / "missing.npz"), 8)
    with pytest.raises(data.DatasetError, match="no .png"):
        data.load_images(f"folder:{tmp_path}", 8)
    with pytest.raises(data.DatasetError, match="fewer than one batch"):
        data.make_dataset("digits", 8, 5000)
    with pytest.raises(data.DatasetError, match="resolution"):
        data.make_dataset("digits", 0, 4)
