"""Incomplete refutation by certified bounds (`swtf.vnnlib.incomplete.slacks`): a refuted disjunct's slack
is a sound bound (checked against sampling), and a NaN bound is never read as a refutation."""

import numpy as np
import tensorflow as tf
from onnx import TensorProto, helper, numpy_helper

from swtf.certify.verifier import Verifier
from swtf.onnx import from_onnx
from swtf.vnnlib import incomplete
from swtf.vnnlib.property import Disjunct


def _net():
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(rng.standard_normal((2, 3)).astype(np.float32), "w"),
         numpy_helper.from_array(rng.standard_normal(2).astype(np.float32), "b")])
    return from_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


def _disjunct(offset):
    """x in [0, 1]^3 and y0 - y1 <= offset."""
    return Disjunct(np.zeros(3), np.ones(3), np.array([[1.0, -1.0]]), np.array([offset]), np.array([False]))


def test_slack_is_a_sound_bound_of_the_row_over_the_box():
    net = _net()
    x = np.random.default_rng(1).uniform(0, 1, (2000, 3))
    values = net.runtime_outputs(x) @ np.array([1.0, -1.0])
    slack = incomplete.slacks(net, [_disjunct(0.0)], "crown")[0]
    assert np.isfinite(slack) and slack <= values.min() + 1e-6
    refuted = incomplete.slacks(net, [_disjunct(values.min() - 1.0)], "crown")[0]
    assert refuted > 0  # a linear net: CROWN is exact, so an offset below the minimum is refuted


def test_a_nan_bound_never_refutes(monkeypatch):
    monkeypatch.setattr(Verifier, "spec_lower_bounds", lambda self, inputs, spec, method: tf.fill(
        [1, spec.shape[1]], tf.constant(np.nan, tf.float64)))
    slack = incomplete.slacks(_net(), [_disjunct(-100.0)], "crown")[0]
    assert slack == -np.inf
