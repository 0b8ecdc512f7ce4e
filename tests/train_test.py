"""The training loop: learning, early stopping that restores the best weights, seeds, bad input."""

import numpy as np
import pytest
import tensorflow as tf

from swtf import data, models, train
from swtf.errors import SwtfError


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", seed=0)


def _fit(d, seed, epochs=3, **kwargs):
    model = models.build("scnn1", d.input_shape, d.num_classes, seed=seed, filters=8)
    options = train.TrainOptions(epochs=epochs, batch_size=32, learning_rate=1e-2, seed=seed, **kwargs)
    history = train.fit(model, (d.x_train, d.y_train), (d.x_val, d.y_val), options=options, quiet=True)
    return model, history


def test_training_learns_digits_and_reports_validation_accuracy(digits):
    model, history = _fit(digits, seed=0, epochs=10)
    assert history.best_val_accuracy == pytest.approx(train.accuracy(model, digits.x_val, digits.y_val))
    assert history.best_val_accuracy > 0.85
    assert train.accuracy(model, digits.x_test, digits.y_test) > 0.8
    assert history["loss"][-1] < history["loss"][0]


def test_same_seed_same_weights_other_seed_other_weights(digits):
    a, _ = _fit(digits, seed=1)
    b, _ = _fit(digits, seed=1)
    c, _ = _fit(digits, seed=2)
    assert all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))
    assert not all(np.array_equal(u, v) for u, v in zip(a.get_weights(), c.get_weights()))


def test_early_stopping_restores_the_best_epochs_weights(digits):
    """A loss that pushes towards wrong labels makes validation accuracy fall after the first epoch."""
    model = models.build("snn", digits.input_shape, 10, seed=0, width=16)
    options = train.TrainOptions(epochs=6, patience=2, learning_rate=0.05, lr_schedule="constant", seed=0)

    def wrong_label_loss(m, batch, step):
        logits = m(batch[0], training=True)
        wrong = tf.cast((batch[1] + 1) % 10, tf.int32)
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=wrong, logits=logits))

    history = train.fit(model, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val), options=options,
                        loss_fn=wrong_label_loss, quiet=True)
    val = history["val_accuracy"]
    assert len(val) == history.best_epoch + 2  # stopped after `patience` epochs without improvement
    assert train.accuracy(model, digits.x_val, digits.y_val) == pytest.approx(max(val))


def test_extras_reach_the_loss_function(digits):
    seen = []

    def loss_with_targets(m, batch, step):
        seen.append(len(batch))
        return tf.reduce_mean(tf.square(m(batch[0], training=True) - batch[2]))

    model = models.build("snn", digits.input_shape, 10, seed=0, width=8)
    targets = np.eye(10, dtype=np.float32)[digits.y_train] * 5.0
    train.fit(model, (digits.x_train, digits.y_train, targets), (digits.x_val, digits.y_val),
              options=train.TrainOptions(epochs=8, batch_size=32, learning_rate=1e-2, seed=0), loss_fn=loss_with_targets, quiet=True)
    assert seen and set(seen) == {3}
    assert train.accuracy(model, digits.x_val, digits.y_val) > 0.5


def test_divergence_and_bad_options_are_one_line_errors(digits):
    model = models.build("snn", digits.input_shape, 10, seed=0, width=8)
    with pytest.raises(SwtfError, match="loss became"):
        train.fit(model, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val),
                  options=train.TrainOptions(epochs=1), loss_fn=lambda m, b, s: tf.constant(np.nan) * tf.reduce_sum(
                      m(b[0])), quiet=True)
    with pytest.raises(SwtfError, match="learning_rate"):
        train.TrainOptions(learning_rate=-1.0)
    with pytest.raises(SwtfError, match="expected input shape"):
        train.predict_logits(model, np.zeros((2, 28, 28, 1), np.float32))


def test_monitor_selects_the_kept_epoch_and_min_epochs_delays_stopping(digits):
    """A monitor that prefers the last epoch keeps it even when clean accuracy peaked earlier."""
    model = models.build("snn", digits.input_shape, 10, seed=0, width=16)
    calls = []

    def later_is_better(m):
        calls.append(1)
        return float(len(calls))

    options = train.TrainOptions(epochs=4, patience=1, seed=0)
    history = train.fit(model, (digits.x_train, digits.y_train), (digits.x_val, digits.y_val), options=options,
                        monitor=("val_later", later_is_better), quiet=True)
    assert history.best_epoch == 4 and history.best_score == 4.0
    assert history["val_later"] == [1.0, 2.0, 3.0, 4.0]
    assert history.best_val_accuracy == pytest.approx(train.accuracy(model, digits.x_val, digits.y_val))

    falling = iter([0.9, 0.5, 0.4, 0.3])
    worse = train.fit(models.build("snn", digits.input_shape, 10, seed=0, width=16), (digits.x_train, digits.y_train),
                      (digits.x_val, digits.y_val), options=options, monitor=("val_falling", lambda m: next(falling)),
                      min_epochs=3, quiet=True)
    assert len(worse.epochs) == 3 and worse.best_epoch == 1  # patience 1 alone would have stopped after epoch 2
