"""Augmentation: shifts are exact pixel translations, flips are mirrors, and both are reproducible."""

import numpy as np
import pytest
import tensorflow as tf

from swtf.distill import augment
from swtf.errors import SwtfError

SEED = tf.constant([3, 7], tf.int64)


def images(n=16, size=6, channels=2):
    return np.random.default_rng(0).uniform(0.1, 1.0, (n, size, size, channels)).astype(np.float32)


def np_shifts(image, max_shift):
    """Every translation of `image` by (dy, dx) in [-max_shift, max_shift]^2 with zero fill."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((max_shift, max_shift), (max_shift, max_shift), (0, 0)))
    return [padded[dy:dy + h, dx:dx + w] for dy in range(2 * max_shift + 1) for dx in range(2 * max_shift + 1)]


@pytest.mark.parametrize("max_shift", [1, 2])
def test_random_shift_is_one_of_the_integer_translations(max_shift):
    x = images()
    shifted = augment.random_shift(x, max_shift, SEED).numpy()
    assert shifted.shape == x.shape
    matches = [[np.array_equal(s, t) for t in np_shifts(image, max_shift)] for image, s in zip(x, shifted)]
    assert all(sum(m) == 1 for m in matches)
    assert len({m.index(True) for m in matches}) > 1  # offsets differ between images


def test_random_shift_of_zero_is_identity():
    x = images()
    np.testing.assert_array_equal(augment.random_shift(x, 0, SEED).numpy(), x)


def test_random_horizontal_flip_mirrors_about_half():
    x = images(n=200)
    flipped = augment.random_horizontal_flip(x, SEED).numpy()
    mirrored = [np.array_equal(f, image[:, ::-1]) for f, image in zip(flipped, x)]
    unchanged = [np.array_equal(f, image) for f, image in zip(flipped, x)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert 60 < sum(mirrored) < 140


def test_augmentation_is_reproducible_and_seed_dependent():
    x = images()
    aug = augment.Augmentation(max_shift=2, horizontal_flip=True)
    first, again = aug(x, SEED).numpy(), aug(x, SEED).numpy()
    other = aug(x, tf.constant([3, 8], tf.int64)).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_default_augmentation_flips_only_mirror_symmetric_data():
    assert augment.default_augmentation("cifar10").horizontal_flip
    assert not augment.default_augmentation("digits").horizontal_flip
    assert not augment.default_augmentation("svhn").horizontal_flip


def test_augmented_copies_come_from_the_data():
    x = images(n=5)
    copies = augment.augmented_copies(x, 12, augment.Augmentation(max_shift=1), seed=0)
    assert copies.shape == (12,) + x.shape[1:]
    assert all(any(np.array_equal(c, t) for image in x for t in np_shifts(image, 1)) for c in copies)


def test_negative_shift_is_refused():
    with pytest.raises(SwtfError, match="max_shift"):
        augment.Augmentation(max_shift=-1)
