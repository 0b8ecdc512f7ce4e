"""Zoo architectures: parameter counts against hand arithmetic, serialisation, bad requests."""

import keras
import numpy as np
import pytest

from swtf import models
from swtf.errors import SwtfError


def conv(k, cin, cout):
    return k * k * cin * cout + cout


def dense(n_in, n_out):
    return n_in * n_out + n_out


HAND_COUNTS = [
    # The original study's CIFAR-10 teacher: 550,570 parameters on 32x32x3.
    ("cifar_cnn", (32, 32, 3), {}, conv(3, 3, 32) + conv(3, 32, 32) + conv(3, 32, 64) + conv(3, 64, 64)
     + conv(3, 64, 128) + conv(3, 128, 128) + dense(4 * 4 * 128, 128) + dense(128, 10)),
    ("svhn_cnn", (32, 32, 3), {}, conv(3, 3, 32) + conv(3, 32, 32) + conv(3, 32, 64) + conv(3, 64, 64)
     + dense(8 * 8 * 64, 512) + dense(512, 10)),
    # 8x8 -> stride 2 'same' -> 4x4 -> 2x2.
    ("convex_cnn", (8, 8, 1), {}, conv(4, 1, 16) + conv(4, 16, 32) + dense(2 * 2 * 32, 100) + dense(100, 10)),
    # 28x28 -> 14x14 -> 7x7 (stride 2 'same' rounds up).
    ("convex_cnn", (28, 28, 1), {"filters": [32, 32, 64, 64], "strides": [1, 2, 1, 2], "dense": [512, 512]},
     conv(4, 1, 32) + conv(4, 32, 32) + conv(4, 32, 64) + conv(4, 64, 64) + dense(7 * 7 * 64, 512)
     + dense(512, 512) + dense(512, 10)),
    ("shallow_cnn", (9, 9, 1), {"filters": [8]}, conv(4, 1, 8) + dense(5 * 5 * 8, 100) + dense(100, 10)),
    ("snn", (8, 8, 1), {"width": 32}, dense(64, 32) + dense(32, 10)),
    ("scnn1", (8, 8, 1), {"filters": 16}, conv(3, 1, 16) + dense(4 * 4 * 16, 10)),
    ("scnn2", (8, 8, 1), {"filters": [8, 16], "dense": [32]}, conv(3, 1, 8) + conv(3, 8, 16) + dense(4 * 4 * 16, 32)
     + dense(32, 10)),
]


@pytest.mark.parametrize("name,shape,hparams,expected", HAND_COUNTS)
def test_parameter_counts_match_hand_arithmetic(name, shape, hparams, expected):
    model = models.build(name, shape, 10, **hparams)
    assert models.count_params(model) == expected
    assert model.count_params() == expected
    assert model(np.zeros((2,) + shape, np.float32)).shape == (2, 10)


def test_cifar_teacher_has_the_original_studys_parameter_count():
    assert models.count_params(models.build("cifar_cnn", (32, 32, 3), 10)) == 550_570


def test_keras_round_trip_in_safe_mode_keeps_logits_and_metadata(tmp_path):
    model = models.build("convex_cnn", (8, 8, 1), 10, normalization=([0.3], [0.2]), seed=3)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=0, atol=0)
    assert isinstance(loaded, models.LayerStack)
    assert loaded.architecture == "convex_cnn" and loaded.hparams["normalization"] == [[0.3], [0.2]]
    assert [layer.name for layer in loaded.ordered_layers] == [layer.name for layer in model.ordered_layers]


def test_normalization_layer_computes_per_channel_standardisation():
    model = models.build("snn", (2, 2, 3), 4, normalization=([0.1, 0.2, 0.3], [0.5, 1.0, 2.0]))
    norm = model.ordered_layers[0]
    x = np.random.default_rng(1).random((3, 2, 2, 3), dtype=np.float32)
    expected = (x - np.array([0.1, 0.2, 0.3])) / np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(np.asarray(norm(x)), expected, rtol=1e-5, atol=1e-6)


def test_same_seed_gives_same_initial_weights():
    a = models.build("scnn2", (8, 8, 1), 10, seed=7).get_weights()
    b = models.build("scnn2", (8, 8, 1), 10, seed=7).get_weights()
    c = models.build("scnn2", (8, 8, 1), 10, seed=8).get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c))


@pytest.mark.parametrize("name,kwargs,fragment", [
    ("resnet", {}, "unknown architecture"),
    ("snn", {"depth": 3}, "bad hyper-parameters"),
    ("shallow_cnn", {"filters": [8, 8, 8]}, "1 or 2 convolutions"),
    ("snn", {"normalization": ([0.1, 0.2], [1.0, 1.0])}, "normalization"),
])
def test_bad_requests_raise_one_line_errors(name, kwargs, fragment):
    with pytest.raises(SwtfError, match=fragment) as err:
        models.build(name, (8, 8, 1), 10, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("hparams", [{"width": -5}, {"width": "a"}, {"bogus": 1}])
def test_bad_hyper_parameter_values_are_one_line(hparams):
    with pytest.raises(SwtfError, match="bad hyper-parameters for snn") as err:
        models.build("snn", (8, 8, 1), 10, **hparams)
    assert "\n" not in str(err.value)
