"""Distillation losses: each takes the teacher's and the student's logits and returns the batch mean.

Three ways of teaching a student from a teacher's logits:

* `matching_logits` (Ba & Caruana, 2014): regress the student's logits onto the teacher's,
  `mean_c (z_teacher - z_student)^2`, averaged over the batch (Keras' MSE convention).
* `soft_target_cross_entropy` (the original shallow-students study, "ranging the teacher's temperature"):
  the student's ordinary softmax is trained against the teacher's softened distribution
  `softmax(z_teacher / T)`; the student is not divided by T and there is no T^2 factor.
* `hinton_kd` (Hinton, Vinyals & Dean, 2015): both sides softened by T,
  `alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(labels, softmax(z_s))`.
  `alpha` weighs the soft term; T^2 keeps its gradient scale independent of T.

Labels may be -1 for unlabelled transfer examples: `masked_cross_entropy` (and so the hard-label term of
`hinton_kd`) averages over the labelled examples only, while the soft terms average over all of them.
All probabilities are taken through `log_softmax`, so large logits do not overflow.
"""

import tensorflow as tf

UNLABELLED = -1  # the label of a transfer example: it has a teacher target but no true class


def matching_logits(teacher_logits, student_logits):
    """Mean squared error between the teacher's and the student's logits (mean over classes and batch)."""
    teacher_logits = tf.convert_to_tensor(teacher_logits, tf.float32)
    student_logits = tf.convert_to_tensor(student_logits, tf.float32)
    return tf.reduce_mean(tf.square(teacher_logits - student_logits))


def soft_target_cross_entropy(teacher_logits, student_logits, temperature):
    """Cross-entropy of `softmax(student_logits)` against the teacher's `softmax(teacher_logits / T)`."""
    teacher_logits = tf.convert_to_tensor(teacher_logits, tf.float32)
    student_logits = tf.convert_to_tensor(student_logits, tf.float32)
    soft_targets = tf.nn.softmax(teacher_logits / temperature, axis=-1)
    per_example = -tf.reduce_sum(soft_targets * tf.nn.log_softmax(student_logits, axis=-1), axis=-1)
    return tf.reduce_mean(per_example)


def masked_cross_entropy(labels, student_logits):
    """Sparse softmax cross-entropy averaged over the examples whose label is not `UNLABELLED`.

    Returns 0 for a batch with no labelled example, so a batch of pure transfer data trains on the soft
    targets alone.
    """
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    student_logits = tf.convert_to_tensor(student_logits, tf.float32)
    labelled = labels >= 0
    per_example = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.maximum(labels, 0),
                                                                  logits=student_logits)
    weights = tf.cast(labelled, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_example * weights), tf.reduce_sum(weights))


def hinton_kd(teacher_logits, student_logits, labels, temperature, alpha):
    """Hinton et al.'s loss: `alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(labels, student)`.

    `teacher_T = softmax(teacher_logits / T)` and `student_T = softmax(student_logits / T)`. The KL term is
    averaged over the whole batch, the cross-entropy over its labelled examples (see `masked_cross_entropy`).
    """
    teacher_logits = tf.convert_to_tensor(teacher_logits, tf.float32)
    student_logits = tf.convert_to_tensor(student_logits, tf.float32)
    teacher_log_probs = tf.nn.log_softmax(teacher_logits / temperature, axis=-1)
    student_log_probs = tf.nn.log_softmax(student_logits / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
    soft_term = temperature ** 2 * tf.reduce_mean(kl)
    return alpha * soft_term + (1.0 - alpha) * masked_cross_entropy(labels, student_logits)
