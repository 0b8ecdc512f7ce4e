"""Transfer data: extra unlabelled inputs on which the student learns to imitate the teacher.

`--transfer_data=npz:PATH` takes the `x_train` images of an .npz archive (uint8 0..255 or floats in [0, 1],
same image shape as the data set; any labels in it are ignored). `--transfer_data=augment:K` makes K
augmented copies of training images (`augment.augmented_copies`). The teacher labels these inputs; they
carry the label `losses.UNLABELLED`.
"""

import os

from swtf.data import read_npz, to_unit_images
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
    (images,) = read_npz(value, ("x_train",))
    return to_unit_images(images, f"transfer data npz:{value}")
