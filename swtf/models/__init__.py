"""Model zoo: `build(name, input_shape, num_classes, **hparams)` returns a `LayerStack`."""

from swtf.models.stack import LayerStack
from swtf.models.zoo import ARCHITECTURES, build, count_params, example_shape

__all__ = ["ARCHITECTURES", "LayerStack", "build", "count_params", "example_shape"]
