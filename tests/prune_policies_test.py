"""Pruning policies checked on models whose filter scores are set by hand, and by brute force."""

import keras
import numpy as np
import pytest

from swtf import models
from swtf.errors import SwtfError
from swtf.prune import (global_fraction, l1_threshold, layer_fraction, plot_sensitivity, remove_filters,
                        sensitivity)


def with_scores(model, layer, scores):
    """Sets `layer`'s kernel so that filter f's entries all equal scores[f] / (its number of weights)."""
    conv = model.get_layer(layer)
    size = int(np.prod(conv.kernel.shape[:3]))
    conv.kernel.assign(np.broadcast_to(np.asarray(scores, "float32") / size, conv.kernel.shape))


def two_conv_model(a_scores=(5.0, 1.0, 4.0, 2.0, 3.0), b_scores=(3.0, 9.0, 12.0, 1.5)):
    """conv 'a': 1x1 kernel over 1 channel (1 weight per filter); conv 'b': 1x1 over a's channels."""
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(len(a_scores), 1, name="a"),
                              keras.layers.Conv2D(len(b_scores), 1, name="b"), keras.layers.Flatten(),
                              keras.layers.Dense(2, name="d")])
    with_scores(model, "a", a_scores)
    with_scores(model, "b", b_scores)
    return model


def as_lists(removals):
    return {name: np.asarray(idx).tolist() for name, idx in removals.items()}


def test_layer_fraction_removes_the_weakest_floor_share_of_each_layer():
    model = two_conv_model()
    # a: floor(0.4 * 5) = 2 weakest of [5, 1, 4, 2, 3] -> 1, 3; b: floor(0.4 * 4) = 1 weakest -> 3
    assert as_lists(layer_fraction(model, 0.4)) == {"a": [1, 3], "b": [3]}
    assert as_lists(layer_fraction(model, 0.4, layers=["b"])) == {"b": [3]}
    # at 0.99 floor leaves at least one filter: a keeps its best (index 0), b its best (index 2)
    assert as_lists(layer_fraction(model, 0.99)) == {"a": [1, 2, 3, 4], "b": [0, 1, 3]}


def test_layer_fraction_counts_against_the_reference_filters():
    model = two_conv_model()
    # the reference had 10 filters in 'a': 60% of them is 6 gone; 5 already are, so one more goes;
    # 'b' is unpruned against its reference of 4: floor(0.6 * 4) = 2 go
    assert as_lists(layer_fraction(model, 0.6, reference={"a": 10, "b": 4})) == {"a": [1], "b": [0, 3]}
    assert layer_fraction(model, 0.2, reference={"a": 10, "b": 4}) == {}


def test_ties_go_to_the_lower_index():
    model = two_conv_model(a_scores=(2.0, 1.0, 1.0, 1.0), b_scores=(1.0, 1.0))
    assert as_lists(layer_fraction(model, 0.5)) == {"a": [1, 2], "b": [0]}


def test_global_fraction_ranks_mean_absolute_weight_across_layers():
    model = two_conv_model()
    # weights per filter: 1 in 'a' (1x1 over 1 channel), 5 in 'b' (1x1 over a's 5 channels)
    b_size = 1 * 1 * 5
    normalised = {"a": [5.0, 1.0, 4.0, 2.0, 3.0], "b": [s / b_size for s in (3.0, 9.0, 12.0, 1.5)]}
    # brute force: every filter but each layer's best, sorted by normalised score, the floor(0.5 * 9) = 4 lowest
    candidates = sorted((score, name, i) for name, scores in normalised.items() for i, score in enumerate(scores)
                        if i != int(np.argmax(scores)))
    expected = {}
    for _, name, i in candidates[:4]:
        expected.setdefault(name, []).append(i)
    assert as_lists(global_fraction(model, 0.5)) == {k: sorted(v) for k, v in expected.items()}
    assert as_lists(global_fraction(model, 0.5)) == {"a": [1], "b": [0, 1, 3]}
    # raw L1 sums would pick a's 1, b's 1.5, a's 2 and b's 3 instead: the normalisation matters
    assert as_lists(global_fraction(model, 0.99)) == {"a": [1, 2, 3, 4], "b": [0, 1, 3]}


def test_l1_threshold_removes_filters_below_it_but_never_the_last():
    model = two_conv_model()
    assert as_lists(l1_threshold(model, 3.5)) == {"a": [1, 3, 4], "b": [0, 3]}
    assert as_lists(l1_threshold(model, 100.0)) == {"a": [1, 2, 3, 4], "b": [0, 1, 3]}
    assert l1_threshold(model, 0.5) == {}


@pytest.mark.parametrize("call", [lambda m: layer_fraction(m, 1.0), lambda m: global_fraction(m, -0.1),
                                  lambda m: l1_threshold(m, float("nan")),
                                  lambda m: layer_fraction(m, 0.5, layers=["z"])])
def test_bad_policy_arguments_are_refused(call):
    with pytest.raises(SwtfError):
        call(two_conv_model())


def test_sensitivity_matches_zeroing_the_weakest_filters(tmp_path):
    model = models.build("scnn2", (8, 8, 1), 10, filters=[4, 5])
    rng = np.random.default_rng(0)
    for v in model.weights:
        v.assign(rng.normal(0, 0.5, size=tuple(v.shape)).astype("float32"))
    x = rng.uniform(size=(64, 8, 8, 1)).astype("float32")
    y = np.argmax(np.asarray(model(x)), axis=1)  # the unpruned model is right on every example

    rows = sensitivity(model, x, y, fractions=(0.25, 0.5, 0.75))

    assert len(rows) == 2 * 4
    for row in rows:
        conv = model.get_layer(row["layer"])
        assert row["filters_removed"] == int(np.floor(row["fraction"] * conv.filters))
        zeroed = model.__class__.from_config(model.get_config())
        zeroed.set_weights(model.get_weights())
        kernel = conv.kernel.numpy()
        weakest = np.argsort(np.abs(kernel).sum(axis=(0, 1, 2)), kind="stable")[:row["filters_removed"]]
        mask = ~np.isin(np.arange(conv.filters), weakest)
        zeroed.get_layer(row["layer"]).kernel.assign(kernel * mask)
        zeroed.get_layer(row["layer"]).bias.assign(conv.bias.numpy() * mask)
        expected = np.mean(np.argmax(np.asarray(zeroed(x)), axis=1) == y)
        assert row["val_accuracy"] == pytest.approx(expected)
    assert all(row["val_accuracy"] == 1.0 for row in rows if row["fraction"] == 0.0)

    path = tmp_path / "plots" / "sensitivity.png"
    plot_sensitivity(rows, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_policies_compose_with_surgery():
    model = two_conv_model()
    pruned = remove_filters(model, global_fraction(model, 0.5))
    assert [pruned.get_layer(n).filters for n in ("a", "b")] == [4, 1]
