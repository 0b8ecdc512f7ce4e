"""Multiply-add (FLOP) counts checked against hand arithmetic."""

import keras

from swtf import models
from swtf.prune import count_flops, count_params, remove_filters


def test_scnn2_flops_by_hand():
    model = models.build("scnn2", (8, 8, 1), 10, filters=[32, 64])
    conv1 = 8 * 8 * 32 * (3 * 3 * 1)      # 'same' padding keeps 8x8: 18,432
    conv2 = 8 * 8 * 64 * (3 * 3 * 32)     # 1,179,648
    logits = (4 * 4 * 64) * 10            # after 2x2 pooling: 10,240
    assert count_flops(model) == conv1 + conv2 + logits == 1208320


def test_convex_cnn_flops_by_hand_before_and_after_pruning():
    model = models.build("convex_cnn", (8, 8, 1), 10)  # 4x4 kernels, stride 2, 'same': 8 -> 4 -> 2
    conv1 = 4 * 4 * 16 * (4 * 4 * 1)      # 4,096
    conv2 = 2 * 2 * 32 * (4 * 4 * 16)     # 32,768
    dense = (2 * 2 * 32) * 100            # 12,800
    logits = 100 * 10                     # 1,000
    assert count_flops(model) == conv1 + conv2 + dense + logits == 50664
    pruned = remove_filters(model, {"conv1": range(8), "conv2": range(16)})
    assert count_flops(pruned) == 4 * 4 * 8 * 16 + 2 * 2 * 16 * (4 * 4 * 8) + 2 * 2 * 16 * 100 + 1000


def test_functional_flops_and_params_count_dense_on_feature_maps():
    inputs = keras.Input((5, 5, 2))
    x = keras.layers.Conv2D(3, 3, strides=2, padding="valid", name="c")(inputs)  # 5 -> 2
    outputs = keras.layers.Dense(4, name="per_pixel")(x)  # a Dense on a (2, 2, 3) map acts per position
    model = keras.Model(inputs, outputs)
    assert count_flops(model) == 2 * 2 * 3 * (3 * 3 * 2) + 2 * 2 * (3 * 4)
    assert count_params(model) == (3 * 3 * 2 * 3 + 3) + (3 * 4 + 4)
