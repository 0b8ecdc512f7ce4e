"""The iterative pruning driver: filter counts follow the tfmot schedule; fine-tuning losses by NumPy."""

import numpy as np
import pytest
import tensorflow as tf

from swtf import data as data_lib
from swtf import models, train
from swtf.errors import SwtfError
from swtf.prune import (constant, count_flops, count_params, distillation_loss, global_fraction, layer_fraction,
                        polynomial, prune_iteratively)


@pytest.fixture(scope="module")
def digits():
    return data_lib.load_dataset("digits", train_limit=400, test_limit=100)


def student(dataset, seed=0):
    return models.build("scnn2", dataset.input_shape, dataset.num_classes, filters=[32, 16], seed=seed)


def test_polynomial_schedule_sets_filter_counts_of_each_round(digits):
    model = student(digits)
    steps = prune_iteratively(model, digits, polynomial(0.5, steps=3), layer_fraction, steps=3)

    # tfmot's PolynomialDecay from 0 to 0.5 over rounds 0..3, cubic: s_t = 0.5 * (1 - (1 - t / 3) ** 3)
    targets = [0.5 * (1 - (1 - t / 3) ** 3) for t in (1, 2, 3)]   # 0.352, 0.481, 0.5
    expected = [{"conv1_1": 32 - int(np.floor(s * 32)), "conv1_2": 16 - int(np.floor(s * 16))} for s in targets]
    assert [s.step for s in steps] == [0, 1, 2, 3]
    assert [s.filters for s in steps[1:]] == expected == [{"conv1_1": 21, "conv1_2": 11},
                                                           {"conv1_1": 17, "conv1_2": 9},
                                                           {"conv1_1": 16, "conv1_2": 8}]
    np.testing.assert_allclose([s.sparsity for s in steps[1:]], targets, rtol=1e-6)
    for s in steps:
        assert s.params == count_params(s.model) and s.flops == count_flops(s.model)
        assert s.val_accuracy == pytest.approx(train.accuracy(s.model, digits.x_val, digits.y_val))
    assert steps[0].model is model and model.get_layer("conv1_1").filters == 32


def test_constant_schedule_prunes_once_and_global_policy_reaches_the_target(digits):
    model = student(digits)
    steps = prune_iteratively(model, digits, constant(0.5), global_fraction, steps=3)
    assert [s.step for s in steps] == [0, 1]
    assert sum(steps[1].filters.values()) == 48 - 24


def test_finetuning_with_teacher_logits_runs_fit_and_counts_epochs(digits):
    model = student(digits)
    options = train.TrainOptions(epochs=2, batch_size=64, patience=2)
    teacher_logits = train.predict_logits(model, digits.x_train)
    steps = prune_iteratively(model, digits, constant(0.5), layer_fraction, steps=1, train_options=options,
                              teacher_logits=teacher_logits)
    assert steps[1].finetune_epochs == 2
    with pytest.raises(SwtfError, match="teacher logits cover 3 examples"):
        prune_iteratively(model, digits, constant(0.5), layer_fraction, steps=1, train_options=options,
                          teacher_logits=teacher_logits[:3])


class FixedLogits(tf.Module):
    """A stand-in student that returns given logits, so the loss can be checked by hand."""

    def __init__(self, logits):
        super().__init__()
        self.logits = tf.constant(logits, tf.float32)

    def __call__(self, x, training=False):
        return self.logits


def test_distillation_losses_match_numpy():
    rng = np.random.default_rng(0)
    student_logits, teacher_logits = rng.normal(size=(2, 5, 3)).astype("float32")
    labels = np.array([0, 2, 1, 1, 0])
    batch = (tf.zeros((5, 1)), tf.constant(labels), tf.constant(teacher_logits))
    model = FixedLogits(student_logits)

    matching = distillation_loss("logits")(model, batch, 0)
    np.testing.assert_allclose(matching, np.mean((teacher_logits - student_logits) ** 2), rtol=1e-5)
    # with alpha = 0 Hinton's loss is the plain cross-entropy on the labels
    hard_only = distillation_loss("hinton", temperature=3.0, alpha=0.0)(model, batch, 0)
    log_probs = student_logits - np.log(np.exp(student_logits).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(hard_only, -np.mean(log_probs[np.arange(5), labels]), rtol=1e-5)
    with pytest.raises(SwtfError, match="unknown distillation loss 'kl'"):
        distillation_loss("kl")


@pytest.mark.slow
def test_digits_student_keeps_accuracy_with_half_its_filters_removed():
    """Measured (seed 0): val 0.972 -> 0.965, test 0.969 -> 0.956, 29,066 -> 9,930 parameters."""
    dataset = data_lib.load_dataset("digits")
    model = models.build("scnn2", dataset.input_shape, dataset.num_classes, seed=0)  # filters (32, 64)
    train.fit(model, (dataset.x_train, dataset.y_train), (dataset.x_val, dataset.y_val), quiet=True,
              options=train.TrainOptions(epochs=30, batch_size=64, patience=5))
    own_logits = train.predict_logits(model, dataset.x_train)  # the unpruned student teaches its pruned self

    steps = prune_iteratively(model, dataset, polynomial(0.5, steps=3), layer_fraction, steps=3,
                              train_options=train.TrainOptions(epochs=10, batch_size=64, patience=3),
                              teacher_logits=own_logits)

    unpruned, pruned = steps[0], steps[-1]
    assert pruned.filters == {"conv1_1": 16, "conv1_2": 32}
    assert pruned.params <= 0.35 * unpruned.params
    assert pruned.val_accuracy >= unpruned.val_accuracy - 0.03
    assert pruned.test_accuracy >= unpruned.test_accuracy - 0.03
