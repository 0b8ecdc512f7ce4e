"""Data loading: ranges, shapes, stratified seeded validation splits, npz copies, mocked tfds, bad input."""

import os
import sys

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


@pytest.fixture
def download_possible(monkeypatch):
    """Tests that mock tensorflow-datasets' download skip the network probe that precedes a real one."""
    monkeypatch.setattr(data, "_check_download_possible", lambda name: None)


def test_tfds_path_works_with_mocked_data(download_possible):
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


TRAIN, TEST, CLASSES = 200, 40, 10


def write_npz(path, **arrays):
    """A valid npz of 5x5 uint8 images with labels cycling 0..9, with `arrays` replacing any of its keys."""
    rng = np.random.default_rng(0)
    contents = dict(x_train=rng.integers(0, 256, (TRAIN, 5, 5), dtype=np.uint8), y_train=np.arange(TRAIN) % CLASSES,
                    x_test=rng.integers(0, 256, (TEST, 5, 5), dtype=np.uint8), y_test=np.arange(TEST) % CLASSES)
    contents.update(arrays)
    np.savez(path, **contents)
    return path


def with_label(split_size, index, value):
    """Labels cycling 0..9 with `value` planted at `index`."""
    labels = (np.arange(split_size) % CLASSES).astype(np.asarray(value).dtype)
    labels[index] = value
    return labels


def load_error(path, **kwargs):
    """The one-line SwtfError that loading npz `path` raises; it names the file."""
    with pytest.raises(SwtfError) as err:
        data.load_dataset(f"npz:{path}", **kwargs)
    message = str(err.value)
    assert "\n" not in message and f"npz:{path}" in message, message
    return message


@pytest.mark.parametrize("arrays,fragment", [
    (dict(y_train=with_label(TRAIN, 17, 100000)), "train label 100000 at index 17 is outside 0..9"),
    (dict(y_train=np.where(np.arange(TRAIN) % 50 == 7, 5000, np.arange(TRAIN) % CLASSES)),
     "train label 5000 at index 7 is outside 0..9"),
    (dict(y_train=with_label(TRAIN, 3, -1)), "train label -1 at index 3 is outside 0..9"),
    (dict(y_train=np.where(np.arange(TRAIN) % CLASSES == 2, 3, np.arange(TRAIN) % CLASSES)),
     "train label 3 at index 2 is outside 0..1 (no training example has label 2)"),
    (dict(y_train=np.arange(TRAIN) % CLASSES + 1), "train label 1 at index 0 is outside 0..K-1"),
    (dict(y_test=with_label(TEST, 5, CLASSES)), "test label 10 at index 5 has no training example"),
    (dict(y_train=with_label(TRAIN, 3, 2.5)), "train label 2.5 at index 3 is not a whole number"),
    (dict(y_test=with_label(TEST, 4, np.nan)), "test label nan at index 4 is not a whole number"),
    (dict(y_train=np.array(["cat"] * TRAIN)), "train labels must be integer class indices, got dtype <U3"),
    (dict(y_train=np.zeros((TRAIN // 2, 2), np.int64)), f"train labels must have shape ({TRAIN},)"),
])
def test_bad_npz_labels_name_the_value_split_and_index(tmp_path, arrays, fragment):
    assert fragment in load_error(write_npz(tmp_path / "toy.npz", **arrays))


def test_known_data_sets_check_labels_against_their_class_count(tmp_path):
    path = write_npz(tmp_path / "mnist.npz", y_test=with_label(TEST, 6, CLASSES))
    assert "test label 10 at index 6 is outside 0..9, the data set's 10 classes" in load_error(path)


def test_npz_class_count_is_the_distinct_training_labels_in_any_whole_number_form(tmp_path):
    labels = np.arange(TRAIN) % 4
    path = write_npz(tmp_path / "toy.npz", y_train=labels.astype(np.float32)[:, None], y_test=np.arange(TEST) % 4)
    d = data.load_dataset(f"npz:{path}", seed=0)
    assert d.num_classes == 4 and d.y_train.dtype == np.int64
    assert sorted(np.concatenate([d.y_train, d.y_val]).tolist()) == sorted(labels.tolist())


def test_missing_modules_are_named_with_their_install_command(monkeypatch, download_possible):
    def load_needing_importlib_resources(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")

    monkeypatch.setattr(tfds, "load", load_needing_importlib_resources)
    with pytest.raises(SwtfError) as err:
        data.load_dataset("mnist")
    assert "pip install importlib_resources" in str(err.value) and "network" not in str(err.value)

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # `import tensorflow_datasets` now fails
    with pytest.raises(SwtfError, match="pip install tensorflow_datasets"):
        data.load_dataset("cifar10")


def test_failed_downloads_still_point_at_the_network(monkeypatch, download_possible):
    def unreachable(*args, **kwargs):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(tfds, "load", unreachable)
    with pytest.raises(SwtfError, match=r"ConnectionError: connection refused.*check the network"):
        data.load_dataset("svhn")


def garbage_files(tmp_path):
    """Files named npz that are no usable archive, with what the error should say about each."""
    write_npz(tmp_path / "good.npz")
    (tmp_path / "truncated.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:200])
    (tmp_path / "text.npz").write_bytes(b"not a zip archive")
    (tmp_path / "empty_file.npz").write_bytes(b"")
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "folder.npz").mkdir()
    write_npz(tmp_path / "objects.npz", x_train=np.array([1, "a", None], dtype=object))
    return [("truncated.npz", "not a readable .npz archive (BadZipFile"),
            ("text.npz", "not a readable .npz archive (ValueError"),
            ("empty_file.npz", "not a readable .npz archive (EOFError"),
            ("single.npy", "holds one .npy array"),
            ("folder.npz", "is a directory"),
            ("objects.npz", "array x_train is unreadable (ValueError: Object arrays"),
            ("absent.npz", "not found")]


def test_garbage_npz_files_are_one_line_errors(tmp_path):
    for name, fragment in garbage_files(tmp_path):
        assert fragment in load_error(tmp_path / name), name


@pytest.mark.parametrize("arrays,fragment", [
    (dict(x_train=np.zeros((0, 5, 5), np.uint8), y_train=np.zeros(0, np.int64)), "train images are empty"),
    (dict(x_test=np.zeros((0, 5, 5), np.float32), y_test=np.zeros(0, np.int64)), "test images are empty"),
    (dict(x_train=np.zeros((TRAIN, 25), np.uint8)), "train images must be (N, H, W) or (N, H, W, C)"),
    (dict(x_test=np.full((TEST, 5, 5), "a")), "test images must be numbers"),
    (dict(x_train=np.where(np.arange(TRAIN)[:, None, None] == 4, np.nan, np.zeros((TRAIN, 5, 5)))),
     "train image 4 holds nan"),
    (dict(x_test=np.where(np.arange(TEST)[:, None, None] == 9, 3.0, np.zeros((TEST, 5, 5)))),
     "test image 9 holds 3.0, but images that are not uint8 must be finite and in [0, 1]"),
])
def test_empty_and_bad_images_are_one_line_errors(tmp_path, arrays, fragment):
    assert fragment in load_error(write_npz(tmp_path / "toy.npz", **arrays))


def test_incomplete_npz_files_name_the_missing_keys(tmp_path):
    incomplete = tmp_path / "incomplete.npz"
    np.savez(incomplete, x_train=np.zeros((4, 2, 2), np.uint8))
    assert "lacks keys y_train, x_test, y_test" in load_error(incomplete)


def test_too_few_examples_to_stratify_are_one_line_errors(tmp_path):
    lone = write_npz(tmp_path / "lone.npz", y_train=with_label(TRAIN, 3, CLASSES))
    assert "class 10 has only one training example" in load_error(lone)
    assert "--train_limit" in load_error(write_npz(tmp_path / "toy.npz"), train_limit=CLASSES - 1)


def test_transfer_data_files_are_read_with_the_same_checks(tmp_path):
    """--transfer_data=npz:PATH goes through `data.read_npz`: a garbage file or a missing key is one line."""
    from swtf.distill import transfer

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 not really a zip")
    for path, fragment in ((garbage, "not a readable .npz archive"), (tmp_path / "none.npz", "not found")):
        with pytest.raises(SwtfError, match=fragment) as err:
            transfer.load_transfer_images(("npz", str(path)), None, None, 0)
        assert "\n" not in str(err.value)
    np.savez(tmp_path / "labels_only.npz", y_train=np.arange(3))
    with pytest.raises(SwtfError, match="lacks keys x_train"):
        transfer.load_transfer_images(("npz", str(tmp_path / "labels_only.npz")), None, None, 0)


def test_one_class_npz_is_refused(tmp_path):
    path = tmp_path / "one.npz"
    np.savez(path, x_train=np.zeros((20, 4, 4), np.uint8), y_train=np.zeros(20, int),
             x_test=np.zeros((5, 4, 4), np.uint8), y_test=np.zeros(5, int))
    with pytest.raises(SwtfError, match="1 class; a classifier needs at least two"):
        data.load_dataset(f"npz:{path}")


def test_a_missing_data_dir_is_named_before_any_download():
    with pytest.raises(SwtfError, match="--data_dir /no/such/folder does not exist"):
        data.load_dataset("mnist", data_dir="/no/such/folder")


def test_no_network_fails_at_once_instead_of_retrying_for_minutes(tmp_path, monkeypatch):
    """A data set that is not prepared needs a download; with the download host unreachable that is one line
    at once (tensorflow-datasets itself retries for minutes and prints its warnings)."""
    monkeypatch.setattr(data, "DOWNLOAD_HOST", ("127.0.0.1", 9))  # the discard port: refused at once
    with pytest.raises(SwtfError, match="cannot be reached to download it"):
        data.load_dataset("fashion_mnist", data_dir=str(tmp_path))
