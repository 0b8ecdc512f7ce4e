"""Data loading: ranges, shapes, stratified seeded validation splits, npz copies, mocked tfds, bad input."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from swtf import data
from swtf.errors import SwtfError

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def test_digits_are_unit_range_nhwc_with_disjoint_stratified_splits():
    d = data.load_dataset("digits", val_fraction=0.1, seed=0)
    assert d.input_shape == (8, 8, 1) and d.num_classes == 10
    for x in (d.x_train, d.x_val, d.x_test):
        assert x.dtype == np.float32 and x.min() >= 0.0 and x.max() <= 1.0
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797
    # Stratified: every class keeps its share of the validation split within one example.
    train_counts = np.bincount(d.y_train, minlength=10) + np.bincount(d.y_val, minlength=10)
    assert np.all(np.abs(np.bincount(d.y_val, minlength=10) - 0.1 * train_counts) <= 1)
    # No image appears in two splits.
    keys = [set(map(bytes, x.reshape(len(x), -1))) for x in (d.x_train, d.x_val, d.x_test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])


def test_validation_split_follows_the_seed_and_the_test_split_never_does():
    a, b, c = (data.load_dataset("digits", seed=s) for s in (0, 0, 1))
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val)
    np.testing.assert_array_equal(a.x_test, c.x_test)


def test_npz_files_are_loaded_and_scaled(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    np.savez(path, x_train=rng.integers(0, 256, (60, 5, 5), dtype=np.uint8), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 256, (9, 5, 5), dtype=np.uint8), y_test=np.arange(9) % 3)
    d = data.load_dataset(f"npz:{path}", val_fraction=0.2, seed=0)
    assert d.input_shape == (5, 5, 1) and d.num_classes == 3 and len(d.x_val) == 12
    with np.load(path) as raw:
        np.testing.assert_allclose(d.x_test[..., 0], raw["x_test"] / 255.0, atol=1e-7)


def test_shared_mnist_copy_is_used_from_data_dir():
    d = data.load_dataset("mnist", data_dir=SHARED_DATA, seed=0, train_limit=2000, test_limit=100)
    assert d.input_shape == (28, 28, 1) and len(d.x_train) + len(d.x_val) == 2000 and len(d.x_test) == 100
    assert d.x_train.max() == 1.0 and d.x_train.min() == 0.0
    assert d.class_names[0] == "0"


def test_tfds_path_works_with_mocked_data():
    with tfds.testing.mock_data(num_examples=300):
        d = data.load_dataset("fashion_mnist", seed=0)
    assert d.input_shape == (28, 28, 1) and d.class_names[0] == "T-shirt/top"
    assert len(d.x_train) + len(d.x_val) == 300 and d.x_train.max() <= 1.0


@pytest.mark.parametrize("name,fragment", [
    ("imagenet", "unknown data set"),
    ("npz:/no/such/file.npz", "not found"),
])
def test_bad_names_and_missing_files_raise_one_line_errors(name, fragment):
    with pytest.raises(SwtfError, match=fragment) as err:
        data.load_dataset(name)
    assert "\n" not in str(err.value)


def test_corrupt_and_incomplete_npz_files_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(SwtfError, match="not a readable"):
        data.load_dataset(f"npz:{corrupt}")
    incomplete = tmp_path / "incomplete.npz"
    np.savez(incomplete, x_train=np.zeros((4, 2, 2), np.uint8))
    with pytest.raises(SwtfError, match="lacks keys"):
        data.load_dataset(f"npz:{incomplete}")
    out_of_range = tmp_path / "range.npz"
    np.savez(out_of_range, x_train=np.full((10, 2, 2), 3.0), y_train=np.arange(10) % 2,
             x_test=np.zeros((2, 2, 2)), y_test=np.arange(2))
    with pytest.raises(SwtfError, match=r"in \[0, 1\]"):
        data.load_dataset(f"npz:{out_of_range}")
