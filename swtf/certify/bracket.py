"""`radius_bracket`: per point, the certified radius and an attack radius, which bracket the true one.

A certified radius is a lower bound of the distance from a point to the nearest misclassified input; the
distance of any misclassified input actually found is an upper bound. Their difference is how far the
verifier can be from the truth on that point, so every caller sees it next to the certificate.

The attack radius comes from PGD (margin loss) on the network at radii max_radius / 2**k, from the largest
down (`counterexamples.nearest_counterexamples`): the distance, in float64, of the nearest adversarial
example it finds, counted only if both the model's own float32 output and the float64 reference `forward`
misclassify it strictly. A point PGD breaks at no radius down to `tol` gets inf; a misclassified clean
point gets 0 on both sides.
"""

import collections

import numpy as np

from swtf.certify import api
from swtf.certify.counterexamples import nearest_counterexamples
from swtf.certify.exact import misclassified_by_both
from swtf.certify.network import forward
from swtf.certify.radius import DEFAULT_TIMEOUT, certified_radius

Bracket = collections.namedtuple("Bracket", "certified attack points")
Bracket.__doc__ = """(N,) certified radii, (N,) attack radii (inf where no adversarial example was found), and
(N, *input shape) the adversarial examples at the attack radii (NaN where none; the clean point where it is
misclassified)."""


def radius_bracket(model, x, y, *, norm="linf", method="crown", clip=(0.0, 1.0), max_radius=1.0, tol=1e-4,
                   dtype="float64", seed=0, timeout_per_point=DEFAULT_TIMEOUT):
    """Certified radius and attack radius of each point (module docstring): certified <= true <= attack.

    Arguments as for `certified_radius` (method 'bab': complete verification within `timeout_per_point`
    seconds per point and bisection step); `seed` seeds the attack. Returns a `Bracket`.
    """
    network = api.as_network(model)
    x = api.check_points(network, x)
    y = api.check_labels(y, len(x), network.output_size)
    certified = certified_radius(model, x, y, norm=norm, method=method, clip=clip, max_radius=max_radius,
                                 tol=tol, dtype=dtype, timeout_per_point=timeout_per_point)
    clip = api.check_options(x, norm, "crown", clip)
    attack = np.full(len(x), np.inf)
    points = np.full(x.shape, np.nan)
    wrong = np.argmax(forward(network, x), axis=1) != y
    attack[wrong], points[wrong] = 0.0, x[wrong]
    correct = np.flatnonzero(~wrong)
    if len(correct):
        found, adversarial = nearest_counterexamples(network, x[correct], y[correct], norm=norm, clip=clip,
                                                     max_radius=max_radius, min_radius=tol, seed=seed)
        for i, distance, point in zip(correct, found, adversarial):
            if np.isfinite(distance) and misclassified_by_both(model, network, point, y[i]):
                attack[i], points[i] = distance, point
    return Bracket(certified, attack, points)
