"""Property-based fuzzing: on random small architectures (dense/conv, widths, strides, paddings, average
and max pooling of any geometry, ReLU/sigmoid/tanh, affine, residual additions), random weights and radii,
no sampled output ever leaves the bounds of any method, and the bisection radius is certified."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swtf import certify
from swtf.certify.network import NetworkBuilder, forward, same_pads
from swtf.certify.sampling import perturbation_samples


@st.composite
def networks(draw):
    """A random Network built directly on the representation (no Keras), with seeded weights."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 31)))
    activation = draw(st.sampled_from(["relu", "relu", "sigmoid", "tanh"]))
    size, channels = draw(st.integers(3, 7)), draw(st.integers(1, 2))
    builder = NetworkBuilder((size, size, channels))
    x = 0
    if draw(st.booleans()):
        x = builder.affine(x, rng.uniform(0.5, 3, channels), rng.normal(size=channels), "affine")
    for i in range(draw(st.integers(0, 2))):
        h, w, c = builder.shape(x)
        kernel, stride = draw(st.integers(1, min(3, h, w))), draw(st.integers(1, 2))
        pads = same_pads(h, kernel, stride) + same_pads(w, kernel, stride) if draw(st.booleans()) else (0,) * 4
        filters = draw(st.integers(1, 3))
        x = builder.conv2d(x, rng.normal(size=(kernel, kernel, c, filters)) / kernel, rng.normal(size=filters) * 0.3,
                           (stride, stride), pads, f"conv{i}")
        x = builder.activation(x, activation, f"act{i}")
        if draw(st.booleans()):  # max pooling of a random geometry
            h, w, _ = builder.shape(x)
            pool = (draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w))))
            x = builder.max_pool(x, pool, (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
                                 draw(st.sampled_from(["valid", "same"])), f"max_pool{i}")
        if draw(st.booleans()):  # a residual block keeping the shape
            h, w, c = builder.shape(x)
            branch = builder.conv2d(x, rng.normal(size=(3, 3, c, c)) / 3, rng.normal(size=c) * 0.3, (1, 1),
                                    same_pads(h, 3, 1) + same_pads(w, 3, 1), f"res{i}")
            x = builder.add(x, builder.activation(branch, activation, f"res_act{i}"), f"add{i}")
    if draw(st.booleans()) and min(builder.shape(x)[:2]) >= 2:
        x = builder.avg_pool(x, (2, 2), (draw(st.integers(1, 2)),) * 2, draw(st.sampled_from(["valid", "same"])),
                             "pool")
    x = builder.reshape(x, (-1,), "flatten")
    for i in range(draw(st.integers(0, 2))):
        width = draw(st.integers(2, 6))
        x = builder.dense(x, rng.normal(size=(builder.shape(x)[0], width)) / np.sqrt(builder.shape(x)[0]),
                          rng.normal(size=width) * 0.3, f"dense{i}")
        x = builder.activation(x, activation, f"dense_act{i}")
    classes = draw(st.integers(2, 3))
    x = builder.dense(x, rng.normal(size=(builder.shape(x)[0], classes)), rng.normal(size=classes), "logits")
    return builder.build(x)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(), eps=st.floats(0.0, 0.3), norm=st.sampled_from(["linf", "l2"]),
       seed=st.integers(0, 2 ** 31))
def test_sampled_outputs_stay_within_bounds_of_every_method(network, eps, norm, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((2,) + network.input_shape)
    samples = [perturbation_samples(x[i], eps, norm, (0.0, 1.0), 500, rng) for i in range(2)]
    outputs = [forward(network, s) for s in samples]
    for method in certify.METHODS:
        lower, upper = certify.bounds(network, x, eps, norm=norm, method=method)
        for i in range(2):
            assert np.all(outputs[i] >= lower[i]) and np.all(outputs[i] <= upper[i]), method


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network=networks(), seed=st.integers(0, 2 ** 31))
def test_certified_radius_has_no_sampled_counterexample(network, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((3,) + network.input_shape)
    y = np.argmax(forward(network, x), axis=1)
    radius = certify.certified_radius(network, x, y, tol=1e-3)
    for i in range(3):
        samples = perturbation_samples(x[i], radius[i], "linf", (0.0, 1.0), 500, rng)
        assert np.all(np.argmax(forward(network, samples), axis=1) == y[i])
