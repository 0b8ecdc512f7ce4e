"""L1 filter scores checked against an explicit loop over the kernel's entries."""

import keras
import numpy as np

from swtf import models
from swtf.prune import filter_counts, l1_filter_scores


def test_scores_are_l1_norms_of_each_filter_kernel_bias_excluded():
    model = models.build("scnn2", (8, 8, 1), 10, filters=[3, 4])
    rng = np.random.default_rng(0)
    for layer in (model.get_layer("conv1_1"), model.get_layer("conv1_2")):
        layer.kernel.assign(rng.normal(size=layer.kernel.shape).astype("float32"))
        layer.bias.assign(np.full(layer.bias.shape, 100.0, "float32"))  # must not change the scores

    scores = l1_filter_scores(model)

    assert list(scores) == ["conv1_1", "conv1_2"]
    for name, got in scores.items():
        kernel = model.get_layer(name).kernel.numpy()
        expected = [sum(abs(float(kernel[i, j, c, f])) for i in range(kernel.shape[0])
                        for j in range(kernel.shape[1]) for c in range(kernel.shape[2]))
                    for f in range(kernel.shape[3])]
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_hand_computed_filter_scores_and_counts():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(2, 2, name="c"),
                              keras.layers.Flatten(), keras.layers.Dense(2, name="d")])
    # filter 0 holds 1, -2, 3, -4 -> 10; filter 1 holds 0.5 four times -> 2
    kernel = np.stack([np.array([[1.0, -2.0], [3.0, -4.0]]), np.full((2, 2), 0.5)], axis=-1)[:, :, None, :]
    model.get_layer("c").kernel.assign(kernel.astype("float32"))
    np.testing.assert_allclose(l1_filter_scores(model)["c"], [10.0, 2.0])
    assert filter_counts(model) == {"c": 2}
