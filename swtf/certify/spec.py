"""Specifications: the rows c of <c, logits> that the methods bound from below.

`logit_spec`: rows e_j and -e_j, giving lower and upper bounds of every logit.
`margin_spec`: rows e_y - e_j for every class j, giving lower bounds of the margins f_y - f_j. Bounding
the margin directly (the C matrix folded into the last linear layer) is tighter than subtracting logit
bounds, because the two logits' dependence on the input cancels before any relaxation.
"""

import tensorflow as tf


def logit_spec(num_points, num_classes, dtype):
    """(N, 2K, K): the K unit rows then their negatives."""
    eye = tf.eye(num_classes, dtype=dtype)
    return tf.broadcast_to(tf.concat([eye, -eye], 0)[None], (num_points, 2 * num_classes, num_classes))


def margin_spec(labels, num_classes, dtype):
    """(N, K, K): row j of point n is e_{y_n} - e_j (all zeros for j = y_n)."""
    true = tf.one_hot(labels, num_classes, dtype=dtype)[:, None, :]
    return true - tf.eye(num_classes, dtype=dtype)[None]
