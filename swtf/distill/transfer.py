"""Transfer data: extra unlabelled inputs on which the student learns to imitate the teacher.

`--transfer_data=npz:PATH` takes the `x_train` images of an .npz archive (uint8 0..255 or floats in [0, 1],
same image shape as the data set; any labels in it are ignored). `--transfer_data=augment:K` makes K
augmented copies of training images (`augment.augmented_copies`). The teacher labels these inputs; they
carry the label `losses.UNLABELLED`.
"""

import os

import numpy as np

from swtf.data import _to_unit_images
from swtf.distill.augment import augmented_copies
from swtf.errors import SwtfError

SYNTAX = "npz:PATH or augment:K"


def parse_transfer_source(text):
    """Validates `--transfer_data` into `("npz", path)`, `("augment", K)` or None for no transfer data."""
    if not text:
        return None
    kind, sep, value = text.partition(":")
    if kind == "npz" and sep and value:
        return "npz", os.path.expanduser(value)
    if kind == "augment" and sep and value.isdigit() and int(value) > 0:
        return "augment", int(value)
    raise SwtfError(f"--transfer_data must be {SYNTAX} with K a positive count, got {text!r}")


def load_transfer_images(source, data, augmentation, seed):
    """The transfer images named by a parsed `source` for `data`, or None."""
    if source is None:
        return None
    kind, value = source
    if kind == "augment":
        return augmented_copies(data.x_train, value, augmentation, seed)
    if not os.path.isfile(value):
        raise SwtfError(f"transfer data file {value} not found; pass an existing .npz with an x_train array")
    try:
        with np.load(value, allow_pickle=False) as archive:
            if "x_train" not in archive.files:
                raise SwtfError(f"{value} has no x_train array; store the transfer images under x_train")
            return _to_unit_images(archive["x_train"], f"transfer data {value}")
    except (ValueError, OSError) as err:
        raise SwtfError(f"{value} is not a readable .npz archive ({err}); re-create it with np.savez") from None
