"""`LayerStack`: the subclassed Keras model every zoo architecture is built as.

A `LayerStack` applies an ordered list of Keras layers. Keeping the order explicit is what lets the
certifier read the network op by op and the pruner rebuild it with fewer filters, without tracing Python
control flow. It serialises to the `.keras` format with plain layer configs, so it loads under
`safe_mode=True` (no lambdas, no pickle).
"""

import keras


@keras.saving.register_keras_serializable(package="swtf")
class LayerStack(keras.Model):
    """A feed-forward model: `ordered_layers` applied one after the other.

    Args:
      stack_layers: the Keras layers, in order of application.
      input_shape_: the shape of one input, without the batch axis, e.g. `(28, 28, 1)`.
      architecture: the zoo name this stack was built from (or "custom"), for reports.
      hparams: the hyper-parameters it was built with (JSON-serialisable), for reports and rebuilding.
    """

    def __init__(self, stack_layers, input_shape_, architecture="custom", hparams=None, **kwargs):
        super().__init__(**kwargs)
        self.ordered_layers = list(stack_layers)
        self.input_shape_ = tuple(int(d) for d in input_shape_)
        self.architecture = architecture
        self.hparams = dict(hparams or {})
        self.build((None,) + self.input_shape_)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.ordered_layers:
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, training=False):
        x = inputs
        for layer in self.ordered_layers:
            x = layer(x, training=training)
        return x

    @property
    def num_classes(self):
        return int(self.compute_output_shape((None,) + self.input_shape_)[-1])

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.ordered_layers:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        return {
            "name": self.name,
            "stack_layers": [keras.saving.serialize_keras_object(layer) for layer in self.ordered_layers],
            "input_shape_": list(self.input_shape_),
            "architecture": self.architecture,
            "hparams": self.hparams,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layers = [keras.saving.deserialize_keras_object(c) for c in config.pop("stack_layers")]
        return cls(stack_layers=layers, **config)
