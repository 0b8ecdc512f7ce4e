"""onnxruntime, the reference the ONNX front-end and the verifier's counterexamples are checked against."""

import math

import numpy as np
import onnx
import onnxruntime as ort

from swtf.errors import SwtfError, first_line


def static_shape(value_info, what):
    """The concrete shape of a graph input/output; a symbolic leading (batch) dimension becomes 1."""
    dims = value_info.type.tensor_type.shape.dim
    shape = []
    for i, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(dim.dim_value)
        elif i == 0:
            shape.append(1)
        else:
            raise SwtfError(f"ONNX {what} {value_info.name!r} has a symbolic dimension {i} "
                            f"({dim.dim_param or '?'}); the certifier needs fixed shapes")
    return tuple(shape)


class Session:
    """Runs an ONNX model on a batch of flattened inputs, one sample at a time (batch fixed to 1).

    Args:
      model: an `onnx.ModelProto`.
      input_name, input_shape: the graph input fed (initializers listed as inputs keep their values).
      outputs: names of the tensors returned (default: the graph's outputs).
    """

    def __init__(self, model, input_name, input_shape, outputs=None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model.SerializeToString(), options,
                                                 providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise SwtfError(f"onnxruntime cannot load the model: {first_line(err)}") from None
        self.input_name, self.input_shape = input_name, tuple(input_shape)
        self.input_dtype = input_dtype(model, input_name)
        self.outputs = list(outputs) if outputs else [o.name for o in model.graph.output]

    def run(self, x):
        """Float64 (N, *) flat values of every output for inputs `x` of shape (N, input size), fed in the
        model's input type (float32 or float64)."""
        x = np.asarray(x, self.input_dtype).reshape(-1, math.prod(self.input_shape))
        rows = [self._session.run(self.outputs, {self.input_name: sample.reshape(self.input_shape)})
                for sample in x]
        return [np.stack([np.asarray(r[i], np.float64).reshape(-1) for r in rows]) for i in range(len(self.outputs))]


def input_dtype(model, input_name):
    """NumPy dtype of graph input `input_name`: float64 for a DOUBLE input, else float32."""
    (value_info,) = [i for i in model.graph.input if i.name == input_name]
    return np.float64 if value_info.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE else np.float32


def with_outputs(model, names, elem_type=onnx.TensorProto.FLOAT):
    """A copy of `model` that also returns the tensors `names`, of type `elem_type` (for locating a
    mismatch)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    known = {o.name for o in copy.graph.output}
    copy.graph.output.extend(onnx.helper.make_tensor_value_info(n, elem_type, None) for n in names if n not in known)
    return copy
