"""Incomplete refutation of disjuncts by certified bounds (CROWN, alpha-CROWN, ...).

A disjunct asks for x in its box with `matrix @ y <= offset`. If a sound lower bound of row i over the
box exceeds `offset[i]`, no x meets row i, so none meets the disjunct: it is refuted. The bounds are the
certifier's float64 spec lower bounds (outward rounded, see `swtf.certify.perturbation`), so a
refutation is a proof for the real-valued network. Disjuncts sharing a box are bounded in one call.
"""

import numpy as np
import tensorflow as tf

from swtf.certify import api
from swtf.certify.perturbation import LinfBox


def box_groups(disjuncts):
    """{(lower bytes, upper bytes): [disjunct indices]}, in first-seen order."""
    groups = {}
    for i, d in enumerate(disjuncts):
        groups.setdefault((d.lower.tobytes(), d.upper.tobytes()), []).append(i)
    return groups


def network_box(net, disjunct):
    """The disjunct's box as a float64 `LinfBox` of one point in the network's input order."""
    lower, upper = (tf.constant(net.to_network(b), tf.float64) for b in (disjunct.lower, disjunct.upper))
    return LinfBox(lower, upper)


def slacks(net, disjuncts, method):
    """Per disjunct, max over its rows of (certified lower bound of row - offset); > 0 means refuted."""
    verifier = api.verifier_for(net.network)
    result = np.full(len(disjuncts), -np.inf)
    for members in box_groups(disjuncts).values():
        rows = np.concatenate([disjuncts[i].matrix for i in members])
        if not len(rows):
            continue
        spec = tf.constant(net.output_rows(rows)[None], tf.float64)
        lower = api.proof_safe(verifier.spec_lower_bounds(network_box(net, disjuncts[members[0]]), spec,
                                                          method).numpy()[0])
        start = 0
        for i in members:
            count = len(disjuncts[i].offset)
            if count:
                result[i] = np.max(lower[start:start + count] - disjuncts[i].offset)
            start += count
    return result
