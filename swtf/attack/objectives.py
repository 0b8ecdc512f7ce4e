"""What an attack maximises, and when it has succeeded, computed from logits.

Untargeted attacks use the true labels and push the true class down; targeted attacks use the target
labels and pull the target class up. `margin` is the distance to success for both, so one rule
("lower margin is a stronger point") ranks attack points whatever the loss.
"""

import numpy as np
import tensorflow as tf

LOSSES = ("ce", "margin")


def margin(logits, labels, targeted):
    """Per-example logit margin; negative once the attack succeeds (up to ties).

    Untargeted, labels y: z_y - max_{j != y} z_j. Targeted, labels t: max_{j != t} z_j - z_t.
    """
    is_label = tf.cast(tf.one_hot(labels, tf.shape(logits)[-1]), tf.bool)
    label_logit = tf.reduce_max(tf.where(is_label, logits, -np.inf), axis=-1)
    best_other = tf.reduce_max(tf.where(is_label, -np.inf, logits), axis=-1)
    return best_other - label_logit if targeted else label_logit - best_other


def succeeded(logits, labels, targeted):
    """Per-example attack success by the model's decision: argmax != y (untargeted), == t (targeted)."""
    predicted = tf.argmax(logits, axis=-1, output_type=labels.dtype)
    return tf.equal(predicted, labels) if targeted else tf.not_equal(predicted, labels)


def attack_objective(logits, labels, loss, targeted):
    """Per-example value the attacker maximises.

    "ce": cross-entropy of the true label (untargeted) or its negative for the target (targeted).
    "margin": minus `margin` (the Carlini-Wagner margin loss without its confidence cap).
    """
    if loss == "margin":
        return -margin(logits, labels, targeted)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    return -cross_entropy if targeted else cross_entropy
