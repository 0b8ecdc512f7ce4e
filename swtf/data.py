"""Data sets as NumPy arrays: float32 NHWC images in [0, 1] and integer labels.

Every perturbation radius in swtf is in these [0, 1] pixel units; models that want normalised inputs
carry their own normalisation layer. Validation is split from the training set (stratified, with the
run's seed); the test split is fixed by the data set and never used to select anything.
"""

import dataclasses
import os
import socket
import zipfile

import numpy as np
from sklearn.model_selection import train_test_split

from swtf.errors import SwtfError, first_line

TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "svhn": "svhn_cropped"}
CLASS_NAMES = {
    "digits": [str(d) for d in range(10)],
    "mnist": [str(d) for d in range(10)],
    "svhn": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
DATASET_NAMES = ("digits",) + tuple(TFDS_NAMES) + ("npz:PATH",)
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0  # fixed, so every run of every seed is scored on the same digits test images


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Train / validation / test splits and what describes them."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple

    @property
    def input_shape(self):
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self):
        return len(self.class_names)

    def summary(self):
        return (f"{self.name}: {len(self.x_train)} train, {len(self.x_val)} validation, {len(self.x_test)} test, "
                f"input {self.input_shape}, {self.num_classes} classes")


def to_unit_images(x, what):
    """Images as float32 NHWC in [0, 1]: uint8 is divided by 255, other numbers must already be in [0, 1].

    `what` names the images in errors, such as "npz:PATH: train".
    """
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or 0 in x.shape[1:]:
        raise SwtfError(f"{what} images must be (N, H, W) or (N, H, W, C) with H, W, C >= 1, "
                        f"got shape {x.shape}")
    if len(x) == 0:
        raise SwtfError(f"{what} images are empty (shape {x.shape}); every split needs at least one example")
    if x.dtype.kind not in "biuf":
        raise SwtfError(f"{what} images must be numbers, got dtype {x.dtype}; "
                        f"store uint8 0..255 or floats in [0, 1]")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    unit = x.astype(np.float32)
    bad = ~(np.isfinite(unit) & (unit >= 0.0) & (unit <= 1.0))
    if bad.any():
        first = int(np.argmax(bad))
        raise SwtfError(f"{what} image {first // x[0].size} holds {x.reshape(-1)[first].item()}, but "
                        f"images that are not uint8 must be finite and in [0, 1] (store uint8 0..255 otherwise)")
    return unit


def _to_labels(y, n, what):
    """Labels of shape (n,) holding whole numbers (an integer dtype, or floats without fractions or NaN).

    The values are left as they are: `_class_count` checks their range before they become int64.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise SwtfError(f"{what} labels must have shape ({n},), one per image, got {y.shape}")
    if y.dtype.kind not in "iuf":
        raise SwtfError(f"{what} labels must be integer class indices, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        not_whole = ~np.isfinite(y) | (y != np.round(y))
        if not_whole.any():
            index = int(np.argmax(not_whole))
            raise SwtfError(f"{what} label {y[index].item()} at index {index} is not a whole number; "
                            f"labels are class indices 0..K-1")
    return y


def _first_outside(y, num_classes):
    """Index of the first label outside 0..num_classes-1, or None."""
    outside = (y < 0) | (y >= num_classes)
    return int(np.argmax(outside)) if outside.any() else None


def _class_count(y_train, y_test, known_classes, source):
    """The class count K, after checking every label is in 0..K-1 and every test class has training examples.

    A known data set's K is its number of classes; an npz file's K is its number of distinct training
    labels, which must therefore be exactly 0..K-1 (a gap or a stray label would add empty classes).
    """
    if known_classes is None:
        present = np.unique(y_train[y_train >= 0])
        numbered = present == np.arange(len(present))
        num_classes = len(present) if numbered.all() else int(np.argmin(numbered))
        index = _first_outside(y_train, num_classes)
        if index is not None:
            span = f"0..{num_classes - 1}" if num_classes else "0..K-1"
            raise SwtfError(f"{source}: train label {y_train[index].item()} at index {index} is outside {span} "
                            f"(no training example has label {num_classes}); number the classes 0..K-1 "
                            f"with every class present in training")
    else:
        num_classes = known_classes
        for split, y in (("train", y_train), ("test", y_test)):
            index = _first_outside(y, num_classes)
            if index is not None:
                raise SwtfError(f"{source}: {split} label {y[index].item()} at index {index} is outside "
                                f"0..{num_classes - 1}, the data set's {num_classes} classes; correct the labels")
    if num_classes < 2:
        raise SwtfError(f"{source}: the training labels hold {num_classes} class; a classifier needs at least two "
                        f"(labels 0..K-1, K >= 2)")
    absent = ~np.isin(y_test, y_train)
    if absent.any():
        index = int(np.argmax(absent))
        raise SwtfError(f"{source}: test label {y_test[index].item()} at index {index} has no training example; "
                        f"add training examples of that class or drop it from the test split")
    return num_classes


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(x, digits.target.astype(np.int64), test_size=DIGITS_TEST_FRACTION,
                            stratify=digits.target, random_state=DIGITS_SPLIT_SEED)


def read_npz(path, keys):
    """The arrays `keys` of the .npz file at `path`, in that order; anything unreadable is one line."""
    source = f"npz:{path}"
    if os.path.isdir(path):
        raise SwtfError(f"{source} is a directory; pass an .npz file with keys {', '.join(keys)}")
    if not os.path.isfile(path):
        raise SwtfError(f"{source} not found; pass an existing .npz file with keys {', '.join(keys)}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise SwtfError(f"{source} is not a readable .npz archive ({type(err).__name__}: {first_line(err)}); "
                        f"re-create it with np.savez") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise SwtfError(f"{source} is not a readable .npz archive (it holds one .npy array); "
                        f"save {', '.join(keys)} together with np.savez")
    with archive:
        missing = [k for k in keys if k not in archive.files]
        if missing:
            raise SwtfError(f"{source} lacks keys {', '.join(missing)}; it needs {', '.join(keys)}")
        return tuple(_read_npz_array(archive, key, source) for key in keys)


def _load_npz(path):
    """(x_train, x_test, y_train, y_test) of a data set's .npz file."""
    x_train, y_train, x_test, y_test = read_npz(path, NPZ_KEYS)
    return x_train, x_test, y_train, y_test


def _read_npz_array(archive, key, source):
    """One array of an open .npz; object arrays (which need pickle, i.e. running code) are refused."""
    try:
        return archive[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise SwtfError(f"{source}: array {key} is unreadable ({type(err).__name__}: {first_line(err)}); "
                        f"store plain numeric arrays with np.savez") from None


# tensorflow-datasets downloads from Google Cloud Storage first; with no network its retries take minutes.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def _check_download_possible(name):
    """Fails at once, naming the fix, where a download could only end after minutes of retries."""
    try:
        socket.create_connection(DOWNLOAD_HOST, timeout=5).close()
    except OSError:
        raise SwtfError(f"{name} is not prepared locally and {DOWNLOAD_HOST[0]} cannot be reached to download it "
                        f"(no network?); pass --data_dir with a {name}.npz copy") from None


def _load_tfds(name, data_dir):
    """Both splits through tensorflow-datasets, which may download; a missing module or download is one line."""
    if data_dir is not None and not os.path.isdir(data_dir):
        raise SwtfError(f"--data_dir {data_dir} does not exist (and holds no {name}.npz); pass the folder with "
                        f"{name}.npz or a tensorflow-datasets folder, or create it for a download")
    try:
        import tensorflow_datasets as tfds

        if not tfds.builder(TFDS_NAMES[name], data_dir=data_dir).is_prepared():
            _check_download_possible(name)
        splits = tfds.load(TFDS_NAMES[name], split=["train", "test"], data_dir=data_dir, as_supervised=True)
        arrays = []
        for split in splits:
            chunks = list(tfds.as_numpy(split.batch(4096)))
            arrays.append((np.concatenate([x for x, _ in chunks]), np.concatenate([y for _, y in chunks])))
    except SwtfError:
        raise
    except ImportError as err:  # tfds imports some of its dependencies only when it builds a data set
        module = (err.name or "tensorflow_datasets").split(".")[0]
        raise SwtfError(f"loading {name} through tensorflow-datasets needs the missing Python module {module}; "
                        f"run `pip install {module}` or pass --data_dir with a {name}.npz copy") from None
    except Exception as err:  # tfds raises many types (network, checksum, missing files)
        raise SwtfError(f"could not load {name} through tensorflow-datasets "
                        f"({type(err).__name__}: {first_line(err)}); check the network or pass --data_dir with a prepared copy or {name}.npz") from None
    (x_train, y_train), (x_test, y_test) = arrays
    return x_train, x_test, y_train, y_test


def _stratified_split(x, y, seed, source, purpose, fix, **size):
    """scikit-learn's stratified train_test_split; its refusals (too few examples per class or part) as one line."""
    try:
        return train_test_split(x, y, stratify=y, random_state=seed, **size)
    except ValueError as err:
        counts = np.bincount(y)
        single = np.flatnonzero(counts == 1)
        if single.size:
            raise SwtfError(f"{source}: class {single[0]} has only one training example, too few to {purpose}; "
                            f"give every class at least two training examples") from None
        raise SwtfError(f"{source}: cannot {purpose} from {len(y)} training examples of {len(counts)} classes "
                        f"({type(err).__name__}: {first_line(err)}); {fix}") from None


def load_dataset(name, data_dir=None, val_fraction=0.1, seed=0, train_limit=None, test_limit=None):
    """Loads data set `name`, validates it, and splits a stratified validation set off its training set.

    Every label must be a class index 0..K-1 (K from the data set, or an npz file's distinct training
    labels) and every test class must have training examples; bad data is a one-line `SwtfError`.

    Args:
      name: "digits" (scikit-learn's bundled 8x8 digits, no download), "mnist", "fashion_mnist", "cifar10",
        "svhn" (tensorflow-datasets; a `<name>.npz` in `data_dir` is used instead when present), or
        "npz:PATH" (keys x_train, y_train, x_test, y_test).
      data_dir: where tensorflow-datasets keeps its data, or a folder of `<name>.npz` copies.
      val_fraction: share of the training set held out for validation (early stopping, selection).
      seed: seeds the validation split and the optional training subset.
      train_limit: keep at most this many training examples (stratified), before the validation split.
      test_limit: keep the first `test_limit` test examples (a fixed prefix, never selected on results).
    """
    if not 0.0 < val_fraction < 1.0:
        raise SwtfError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if name == "digits":
        x_train, x_test, y_train, y_test = _load_digits()
        label, source = "digits", "digits"
    elif name.startswith("npz:"):
        path = os.path.expanduser(name[4:])
        x_train, x_test, y_train, y_test = _load_npz(path)
        label, source = os.path.splitext(os.path.basename(path))[0], f"npz:{path}"
    elif name in TFDS_NAMES:
        local_copy = os.path.join(data_dir, f"{name}.npz") if data_dir else None
        if local_copy and os.path.isfile(local_copy):
            x_train, x_test, y_train, y_test = _load_npz(local_copy)
            source = f"npz:{local_copy}"
        else:
            x_train, x_test, y_train, y_test = _load_tfds(name, data_dir)
            source = name
        label = name
    else:
        raise SwtfError(f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}")

    x_train, x_test = to_unit_images(x_train, f"{source}: train"), to_unit_images(x_test, f"{source}: test")
    y_train = _to_labels(y_train, len(x_train), f"{source}: train")
    y_test = _to_labels(y_test, len(x_test), f"{source}: test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise SwtfError(f"{source}: train images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ")
    known_names = CLASS_NAMES.get(label)
    num_classes = _class_count(y_train, y_test, len(known_names) if known_names else None, source)
    class_names = known_names or [str(c) for c in range(num_classes)]
    y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)

    if train_limit is not None and train_limit < len(y_train):
        x_train, _, y_train, _ = _stratified_split(
            x_train, y_train, seed, source, f"keep a stratified subset of {train_limit} (--train_limit)",
            f"use a --train_limit that keeps and leaves out at least {num_classes}, or none", train_size=train_limit)
    if test_limit is not None:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    x_train, x_val, y_train, y_val = _stratified_split(
        x_train, y_train, seed, source, "split a stratified validation set",
        "use more data or change --val_fraction so both parts get an example of every class",
        test_size=val_fraction)
    return Dataset(label, x_train, y_train, x_val, y_val, x_test, y_test, tuple(class_names))
