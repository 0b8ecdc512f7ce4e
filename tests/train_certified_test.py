"""Tests of certified training: live float32 bounds against the engine's float64 bounds, the schedules'
hand-computed values, the loss against an independent evaluation, one step lowering it, certified weight
selection, and (slow) certified accuracy of IBP / CROWN-IBP training against standard training."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from swtf import certify, data, models, train
from swtf.certify.linear_ops import tensor_nodes
from swtf.errors import SwtfError
from swtf.train import certified

EPS = 0.1


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", seed=0)


def _model(digits, seed=0):
    return models.build("convex_cnn", digits.input_shape, digits.num_classes, seed=seed)


def _engine_margins(model, x, y, eps, method):
    """The engine's float64 margin lower bounds with the j = y entry set to 0, as the training bounds have."""
    lower = certify.margin_bounds(model, x, y, eps, method=method)
    lower[np.arange(len(y)), y] = 0.0
    return lower


@pytest.mark.parametrize("method", certified.METHODS)
def test_live_bounds_equal_engine_float64_bounds_and_have_gradients(digits, method):
    model = _model(digits)
    x, y = digits.x_test[:16], digits.y_test[:16]
    with tf.GradientTape() as tape:
        lower = certified.live_margin_bounds(model, x, y, EPS, method)
        total = tf.reduce_sum(lower)
    reference = _engine_margins(model, x, y, EPS, method)
    scale = np.abs(reference).max()
    assert lower.dtype == tf.float32
    # float32 with the engine's float32 outward rounding (1e-4 of the terms' magnitude): below the float64
    # bound, and close to it.
    np.testing.assert_allclose(lower.numpy(), reference, atol=5e-4 * scale)
    assert np.all(lower.numpy() <= reference + 1e-6 * scale)
    for variable, gradient in zip(model.trainable_variables, tape.gradient(total, model.trainable_variables)):
        assert gradient is not None, variable.path
        assert np.all(np.isfinite(gradient)) and np.any(gradient.numpy() != 0), variable.path


def test_live_bounds_follow_the_weights_as_they_change(digits):
    model = _model(digits)
    x, y = digits.x_test[:8], digits.y_test[:8]
    before = certified.live_margin_bounds(model, x, y, EPS).numpy()
    for variable in model.trainable_variables:
        variable.assign(variable * 1.5)
    after = certified.live_margin_bounds(model, x, y, EPS).numpy()
    reference = _engine_margins(model, x, y, EPS, "ibp")
    np.testing.assert_allclose(after, reference, atol=5e-4 * np.abs(reference).max())
    assert np.abs(after - before).max() > 0.1


def test_live_verifier_refuses_trainable_weights_outside_the_bounds():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    with pytest.raises(SwtfError, match="gamma"):
        certified.live_verifier(model)


def test_live_weights_must_have_the_bounds_dtype(digits):
    network = certify.from_keras(_model(digits))
    with pytest.raises(SwtfError, match="float32.*float64"):
        tensor_nodes(network, tf.float64, live=True)


def test_linear_ramp_values():
    ramp = certified.LinearRamp(0.0, 0.1, warmup_steps=10, ramp_steps=40)
    steps = [0, 9, 10, 20, 30, 50, 1000]
    np.testing.assert_allclose([float(ramp(s)) for s in steps], [0, 0, 0, 0.025, 0.05, 0.1, 0.1], atol=1e-7)
    jump = certified.LinearRamp(1.0, 0.5, warmup_steps=3, ramp_steps=0)
    np.testing.assert_allclose([float(jump(s)) for s in (0, 2, 3, 4)], [1, 1, 0.5, 0.5])
    in_graph = tf.function(ramp)(tf.Variable(20, dtype=tf.int64))
    np.testing.assert_allclose(float(in_graph), 0.025, atol=1e-7)
    assert certified.LinearRamp.from_config(ramp.get_config()).get_config() == ramp.get_config()


def test_ramp_schedules_follow_gowal_and_zhang():
    eps, kappa, beta = certified.ramp_schedules(0.11, 0.5, warmup_steps=5, ramp_steps=10)
    for step, (e, k, b) in {0: (0, 1, 1), 5: (0, 1, 1), 10: (0.055, 0.75, 0.5), 15: (0.11, 0.5, 0),
                            99: (0.11, 0.5, 0)}.items():
        np.testing.assert_allclose([float(eps(step)), float(kappa(step)), float(beta(step))], [e, k, b],
                                   atol=1e-7)
    with pytest.raises(SwtfError, match="kappa_final"):
        certified.ramp_schedules(0.1, 1.5, 0, 1)


def _constant(value):
    return lambda step: tf.constant(value, tf.float32)


def _cross_entropy(logits, y):
    logits = logits - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(y)), y]))


@pytest.mark.parametrize("method, beta", [("ibp", None), ("crown-ibp", 0.25)])
def test_certified_loss_equals_an_independent_evaluation(digits, method, beta):
    model = _model(digits)
    x, y = digits.x_test[:32], digits.y_test[:32]
    kappa = 0.3
    loss_fn = certified.certified_loss(method, _constant(EPS), _constant(kappa),
                                       None if beta is None else _constant(beta))
    loss = float(loss_fn(model, (tf.constant(x), tf.constant(y)), tf.constant(0)))
    margins = _engine_margins(model, x, y, EPS, "ibp")
    if beta is not None:
        margins = beta * _engine_margins(model, x, y, EPS, "crown-ibp") + (1 - beta) * margins
    logits = certify.forward(certify.from_keras(model), x)
    expected = kappa * _cross_entropy(logits, y) + (1 - kappa) * _cross_entropy(-margins, y)
    np.testing.assert_allclose(loss, expected, rtol=1e-3)


def test_certified_loss_in_warm_up_is_the_clean_loss(digits):
    model = _model(digits)
    x, y = digits.x_test[:32], digits.y_test[:32]
    schedules = certified.ramp_schedules(EPS, 0.5, warmup_steps=10, ramp_steps=10)
    loss_fn = certified.certified_loss("crown-ibp", *schedules)
    batch = (tf.constant(x), tf.constant(y))
    np.testing.assert_allclose(float(loss_fn(model, batch, tf.constant(3))),
                               float(train.cross_entropy_loss(model, batch, 3)), rtol=1e-6)


def test_certified_loss_checks_its_method_and_beta():
    with pytest.raises(SwtfError, match="needs beta_schedule"):
        certified.certified_loss("crown-ibp", _constant(0.1), _constant(0.5))
    with pytest.raises(SwtfError, match="takes no beta_schedule"):
        certified.certified_loss("ibp", _constant(0.1), _constant(0.5), _constant(1.0))
    with pytest.raises(SwtfError, match="one of ibp, crown-ibp"):
        certified.certified_loss("crown", _constant(0.1), _constant(0.5))


@pytest.mark.parametrize("method", certified.METHODS)
def test_one_gradient_step_lowers_the_certified_loss(digits, method):
    model = _model(digits)
    batch = (tf.constant(digits.x_train[:64]), tf.constant(digits.y_train[:64]))
    loss_fn = certified.certified_loss(method, _constant(EPS), _constant(0.5),
                                       _constant(0.5) if method == "crown-ibp" else None)
    optimizer = keras.optimizers.SGD(0.05)
    with tf.GradientTape() as tape:
        before = loss_fn(model, batch, tf.constant(0))
    optimizer.apply_gradients(zip(tape.gradient(before, model.trainable_variables), model.trainable_variables))
    after = loss_fn(model, batch, tf.constant(0))
    assert float(after) < float(before) - 1e-3


def test_certified_selection_keeps_the_certified_best_epoch(digits):
    model = _model(digits)
    options = train.TrainOptions(epochs=4, batch_size=128, learning_rate=3e-3, patience=4)
    steps = math.ceil(len(digits.x_train) / options.batch_size)
    loss_fn = certified.certified_loss("ibp", *certified.ramp_schedules(EPS, 0.5, steps, steps)[:2])
    history = train.fit(model, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val), options=options,
                        loss_fn=loss_fn, quiet=True, monitor=certified.certified_monitor(digits.x_val, digits.y_val,
                                                                                         EPS))
    scores = history["val_certified_accuracy"]
    assert len(scores) == 4
    last_best = max(i for i, s in enumerate(scores) if s == max(scores))  # ties go to the later epoch
    assert history.best_epoch == last_best + 1
    assert certified.certified_accuracy(model, digits.x_val, digits.y_val, EPS, method="ibp") == max(scores)


def test_certified_accuracy_counts_points_whose_margins_are_all_positive(digits):
    model = _model(digits)
    x, y = digits.x_test[:20], digits.y_test[:20]
    expected = np.mean(np.all(certify.margin_bounds(model, x, y, 0.01) > 0, axis=1))
    assert certified.certified_accuracy(model, x, y, 0.01, batch_size=7) == expected


@pytest.mark.slow
def test_certified_training_certifies_more_digits_than_standard_training(digits):
    """convex_cnn on digits, eps 0.1 (trained at 0.11): CROWN-certified test accuracy, float64."""
    options = train.TrainOptions(epochs=30, batch_size=64, learning_rate=2e-3, patience=30)
    steps = math.ceil(len(digits.x_train) / options.batch_size)
    arrays, val = (digits.x_train, digits.y_train), (digits.x_val, digits.y_val)
    standard = _model(digits)
    train.fit(standard, arrays, val, options=options, quiet=True)
    baseline = certified.certified_accuracy(standard, digits.x_test, digits.y_test, EPS)
    for method in certified.METHODS:
        eps, kappa, beta = certified.ramp_schedules(1.1 * EPS, 0.5, 2 * steps, 15 * steps)
        model = _model(digits)
        train.fit(model, arrays, val, options=options, quiet=True,
                  loss_fn=certified.certified_loss(method, eps, kappa, beta if method == "crown-ibp" else None),
                  monitor=certified.certified_monitor(*val, EPS), min_epochs=17)
        robust = certified.certified_accuracy(model, digits.x_test, digits.y_test, EPS)
        assert robust > baseline + 0.15, (method, robust, baseline)
        assert train.accuracy(model, digits.x_test, digits.y_test) > 0.8
