"""Label-preserving image augmentation for online distillation targets and augmented transfer sets.

Small random translations (zero-padded by `max_shift` pixels, then cropped back at a random offset per
image) and, for natural images whose classes are mirror-symmetric (CIFAR-like), random horizontal flips.
Flips are off for digits and house numbers, whose mirror images are other glyphs. Randomness is stateless
(`tf.random.stateless_*` with an explicit seed pair), so a run is reproducible step by step.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from swtf.errors import SwtfError

FLIP_DATASETS = ("cifar10",)  # data sets whose classes survive a left-right mirror


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Random shift by up to `max_shift` pixels per axis, and a random left-right flip if `horizontal_flip`."""

    max_shift: int = 2
    horizontal_flip: bool = False

    def __post_init__(self):
        if self.max_shift < 0:
            raise SwtfError(f"augmentation max_shift must be >= 0 pixels, got {self.max_shift}")

    def __call__(self, images, seed):
        """Augments a batch of NHWC `images`; `seed` is a pair of integers (e.g. `[run_seed, step]`)."""
        images = tf.convert_to_tensor(images, tf.float32)
        shift_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        if self.max_shift:
            images = random_shift(images, self.max_shift, shift_seed)
        if self.horizontal_flip:
            images = random_horizontal_flip(images, flip_seed)
        return images


def default_augmentation(dataset_name, max_shift=2):
    """Shifts for every data set; flips only for the mirror-symmetric ones in `FLIP_DATASETS`."""
    return Augmentation(max_shift=max_shift, horizontal_flip=dataset_name in FLIP_DATASETS)


def random_shift(images, max_shift, seed):
    """Translates each image by its own integer offset in [-max_shift, max_shift]^2, filling with zeros.

    Zero-pads by `max_shift` on every side, then gathers an (H, W) window at a random offset per image:
    pixels are moved, never interpolated.
    """
    shape = tf.shape(images)
    n, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    offsets = tf.random.stateless_uniform([n, 2], seed, minval=0, maxval=2 * max_shift + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    cols = offsets[:, 1:] + tf.range(width)[None, :]
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def random_horizontal_flip(images, seed):
    """Mirrors each image left-right with probability 1/2."""
    flip = tf.random.stateless_uniform([tf.shape(images)[0], 1, 1, 1], seed) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def augmented_copies(x, count, augmentation, seed):
    """`count` augmented images, each from a training image drawn uniformly with replacement.

    This is the built-in transfer set (`--transfer_data=augment:K`): extra inputs near the data on which the
    student learns to imitate the teacher (the teacher labels them; they have no true class).
    """
    rng = np.random.default_rng(seed)
    sources = np.asarray(x, np.float32)[rng.integers(0, len(x), size=count)]
    batches = [augmentation(sources[i:i + 1024], tf.constant([seed, i], tf.int64)).numpy()
               for i in range(0, count, 1024)]
    return np.concatenate(batches) if batches else sources[:0]
