"""The model's logits and the input gradient of an attack objective, as a graph function of its own.

Every attack loop (the attacks' and adversarial training's) calls it once per step instead of inlining the
model's forward and backward pass into the loop. Inlined, the pass sits inside the loop's cycle, and there
TF's oneDNN graph rewrite left MaxPoolGrad to Eigen's kernel (3.9x slower than oneDNN's on scnn1) in some
instantiations of the graph and not in others, at random: the rewrite takes a MaxPoolGrad only if it has
already rewritten its MaxPool, and the order it visits a loop's nodes in varies (seen in the run
metadata's partition graphs). Measured on scnn1 (40 L-inf steps, 128 points, 12 re-instantiations):
inlined, 600-650 steps/s in about half of them and 860-910 in the rest; as a function of its own,
810-870 in every one. On nets without pooling the call costs 3-7% (snn, shallow_cnn).
"""

import tensorflow as tf

from swtf.attack import objectives


def logits_and_gradient(get_model, example_shape, loss, targeted):
    """A `tf.function(x, y) -> (logits, objective, d sum(objective) / dx)`, never inlined into its caller.

    `get_model()` returns the Keras model (called with `training=False`); a callable, so that a cached
    attack can hold its model weakly. `example_shape`: one input's shape; `loss`, `targeted`: as in
    `objectives.attack_objective`.
    """

    @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(example_shape), tf.float32),
                                  tf.TensorSpec((None,), tf.int32)], experimental_attributes={"_noinline": True})
    def call(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = get_model()(x, training=False)
            objective = objectives.attack_objective(logits, y, loss, targeted)
            total = tf.reduce_sum(objective)
        return logits, objective, tape.gradient(total, x)

    return call
