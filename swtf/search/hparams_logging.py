"""TensorBoard HParams logs of a search: one folder per trial with its hyper-parameters and its curves.

`<log_dir>/<trial_id>/` holds the trial's `hparams` summary (TensorBoard's HParams plugin, written at the
start of training), the scalars "val_accuracy" and "loss" per epoch, and a session-end marker. The
dashboard infers the hyper-parameter columns and the metrics from these folders: open
`tensorboard --logdir <log_dir>` and its HPARAMS tab.
"""

import keras
import tensorflow as tf
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import api_pb2, summary

LOGGED_SCALARS = ("val_accuracy", "loss")


def _hparam_value(value):
    """HParams take bool, int, float or str; tuples and None (inactive conditionals) become strings."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


class TrialHParamsLogger(keras.callbacks.Callback):
    """Writes one trial's hyper-parameters and per-epoch metrics for TensorBoard's HParams dashboard."""

    def __init__(self, log_dir, hyperparameters, trial_id):
        super().__init__()
        self.log_dir = log_dir
        self.hyperparameters = {name: _hparam_value(v) for name, v in hyperparameters.items()}
        self.trial_id = trial_id
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            hparams_api.hparams(self.hyperparameters, trial_id=self.trial_id)

    def on_epoch_end(self, epoch, logs=None):
        with self._writer.as_default(step=epoch + 1):
            for name in LOGGED_SCALARS:
                if name in (logs or {}):
                    tf.summary.scalar(name, float(logs[name]))

    def on_train_end(self, logs=None):
        with self._writer.as_default():
            end = summary.session_end_pb(api_pb2.STATUS_SUCCESS).SerializeToString()
            tf.summary.experimental.write_raw_pb(end, step=0)
        self._writer.close()
