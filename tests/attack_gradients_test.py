"""`swtf.attack.gradients`: the attack loops' model pass, checked against an eager tape and by its attributes."""

import numpy as np
import pytest
import tensorflow as tf

from swtf.attack import gradients, objectives
from swtf.models import build

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def pooled_model():
    return build("scnn1", SHAPE, 5, seed=0, filters=4)


def _eager(model, x, y, loss, targeted):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        objective = objectives.attack_objective(logits, y, loss, targeted)
        total = tf.reduce_sum(objective)
    return logits.numpy(), objective.numpy(), tape.gradient(total, x).numpy()


@pytest.mark.parametrize("loss,targeted", [("ce", False), ("ce", True), ("margin", False)])
def test_matches_an_eager_tape_also_when_called_from_a_loop(pooled_model, loss, targeted):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(6,) + SHAPE).astype(np.float32)
    y = rng.integers(0, 5, size=6).astype(np.int32)
    call = gradients.logits_and_gradient(lambda: pooled_model, SHAPE, loss, targeted)

    @tf.function
    def in_a_loop(x, y):  # how the attacks call it: from a step loop, on a loop variable
        total = tf.zeros_like(x)
        for _ in tf.range(3):
            total += call(x, y)[2]
        return total / 3.0

    want = _eager(pooled_model, x, y, loss, targeted)
    for got, expected in zip(call(x, y), want):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(in_a_loop(x, y).numpy(), want[2], rtol=1e-5, atol=1e-6)
    assert np.abs(want[2]).max() > 0  # a gradient that could have been wrong


def test_is_never_inlined(pooled_model):
    """Inlined into a loop, the pass can run Eigen's slow MaxPoolGrad (module docstring): keep it apart."""
    call = gradients.logits_and_gradient(lambda: pooled_model, SHAPE, "ce", False)
    function_def = call.get_concrete_function().function_def
    assert function_def.attr["_noinline"].b
