"""Data sets as NumPy arrays: float32 NHWC images in [0, 1] and integer labels.

Every perturbation radius in swtf is in these [0, 1] pixel units; models that want normalised inputs
carry their own normalisation layer. Validation is split from the training set (stratified, with the
run's seed); the test split is fixed by the data set and never used to select anything.
"""

import dataclasses
import os

import numpy as np
from sklearn.model_selection import train_test_split

from swtf.errors import SwtfError

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


def _to_unit_images(x, source):
    """Images as float32 NHWC in [0, 1]: uint8 is divided by 255, floats must already be in [0, 1]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise SwtfError(f"{source}: images must be (N, H, W) or (N, H, W, C), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0:
        raise SwtfError(f"{source}: float images must be finite and in [0, 1] (store uint8 0..255 otherwise)")
    return x


def _to_labels(y, n, source):
    y = np.asarray(y).reshape(-1)
    if y.shape[0] != n or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise SwtfError(f"{source}: labels must be {n} non-negative integers, got {y.dtype} of shape {y.shape}")
    return y.astype(np.int64)


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    return train_test_split(x, digits.target.astype(np.int64), test_size=DIGITS_TEST_FRACTION,
                            stratify=digits.target, random_state=DIGITS_SPLIT_SEED)


def _load_npz(path):
    if not os.path.isfile(path):
        raise SwtfError(f"data file {path} not found; pass an existing .npz with keys {', '.join(NPZ_KEYS)}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in NPZ_KEYS if k not in archive.files]
            if missing:
                raise SwtfError(f"{path} lacks keys {', '.join(missing)}; it needs {', '.join(NPZ_KEYS)}")
            return tuple(archive[k] for k in ("x_train", "x_test", "y_train", "y_test"))
    except (ValueError, OSError) as err:
        raise SwtfError(f"{path} is not a readable .npz archive ({err}); re-create it with np.savez") from None


def _load_tfds(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        splits = tfds.load(TFDS_NAMES[name], split=["train", "test"], data_dir=data_dir, as_supervised=True)
    except Exception as err:  # tfds raises many types (network, checksum, missing files)
        raise SwtfError(f"could not load {name} through tensorflow-datasets ({type(err).__name__}); "
                        f"check the network or pass --data_dir with a prepared copy or {name}.npz") from None
    arrays = []
    for split in splits:
        chunks = list(tfds.as_numpy(split.batch(4096)))
        arrays.append((np.concatenate([x for x, _ in chunks]), np.concatenate([y for _, y in chunks])))
    (x_train, y_train), (x_test, y_test) = arrays
    return x_train, x_test, y_train, y_test


def _stratified_subset(x, y, limit, seed):
    if limit is None or limit >= len(y):
        return x, y
    x_keep, _, y_keep, _ = train_test_split(x, y, train_size=limit, stratify=y, random_state=seed)
    return x_keep, y_keep


def load_dataset(name, data_dir=None, val_fraction=0.1, seed=0, train_limit=None, test_limit=None):
    """Loads data set `name` and splits a stratified validation set off its training set.

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
        label = "digits"
    elif name.startswith("npz:"):
        x_train, x_test, y_train, y_test = _load_npz(os.path.expanduser(name[4:]))
        label = os.path.splitext(os.path.basename(name[4:]))[0]
    elif name in TFDS_NAMES:
        local_copy = os.path.join(data_dir, f"{name}.npz") if data_dir else None
        if local_copy and os.path.isfile(local_copy):
            x_train, x_test, y_train, y_test = _load_npz(local_copy)
        else:
            x_train, x_test, y_train, y_test = _load_tfds(name, data_dir)
        label = name
    else:
        raise SwtfError(f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}")

    x_train, x_test = _to_unit_images(x_train, f"{name} train"), _to_unit_images(x_test, f"{name} test")
    y_train, y_test = _to_labels(y_train, len(x_train), f"{name} train"), _to_labels(y_test, len(x_test),
                                                                                       f"{name} test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise SwtfError(f"{name}: train images {x_train.shape[1:]} and test images {x_test.shape[1:]} differ")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    class_names = CLASS_NAMES.get(label, [str(c) for c in range(num_classes)])
    if num_classes > len(class_names):
        raise SwtfError(f"{name}: labels go up to {num_classes - 1} but the data set has {len(class_names)} classes")

    x_train, y_train = _stratified_subset(x_train, y_train, train_limit, seed)
    if test_limit is not None:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    try:
        x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=val_fraction,
                                                          stratify=y_train, random_state=seed)
    except ValueError as err:
        raise SwtfError(f"{name}: cannot split a stratified validation set from {len(y_train)} training examples "
                        f"({err}); use more data or a larger --val_fraction") from None
    return Dataset(label, x_train, y_train, x_val, y_val, x_test, y_test, tuple(class_names))
