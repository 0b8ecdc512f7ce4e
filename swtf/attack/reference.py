"""Cleverhans 4's PGD at swtf's budget: the independent reference our attacks are checked against.

Cleverhans (Papernot et al.) runs its loop eagerly and returns the last iterate of one start. It is
offered as `--attack_backend=cleverhans` and used by the tests to show that swtf's `pgd` is at least as
strong at equal eps, steps, step size and restarts.
"""

import numpy as np
import tensorflow as tf
from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

from swtf.attack import inputs, iterative, lp_balls
from swtf.errors import SwtfError

_CLEVERHANS_NORMS = {"linf": np.inf, "l2": 2}


def cleverhans_pgd(model, x, y, eps, *, norm="linf", steps=40, step_size=None, rand_init=True,
                   clip=(0.0, 1.0), seed=0, batch_size=256):
    """Runs `cleverhans.tf2.attacks.projected_gradient_descent` on NumPy `x` with true labels `y`.

    Arguments mean what they mean in `swtf.attack.pgd` (one restart, cross-entropy loss, untargeted);
    `step_size` defaults to 2.5 * eps / steps as there. Cleverhans draws its random start from
    TensorFlow's global generator, so this sets `tf.random.set_seed(seed)` first.

    Returns:
      x_adv: float32 array shaped like x.
    """
    eps = inputs.check_radius("eps", eps)
    steps = inputs.check_count("steps", steps)
    step_size = inputs.check_radius("step_size", 2.5 * eps / steps if step_size is None else step_size)
    inputs.check_choice("norm", norm, lp_balls.NORMS)
    batch_size = inputs.check_count("batch_size", batch_size)
    clip = inputs.check_clip(clip)
    if step_size > eps:
        raise SwtfError(f"cleverhans needs step_size <= eps, got step_size={step_size:g} > eps={eps:g}; "
                        f"use steps >= 3 or a smaller step_size")
    x, y = inputs.check_batch(model, x, y, clip)
    y = inputs.check_labels(y, iterative.num_logits(model, x.shape[1:]))
    tf.random.set_seed(seed)
    # `model` itself (not a fresh lambda) is the model_fn, so cleverhans's compiled gradient traces once.
    x_adv = [projected_gradient_descent(
        model, tf.constant(x[i:i + batch_size]), eps, step_size, steps, _CLEVERHANS_NORMS[norm],
        clip_min=clip[0], clip_max=clip[1], y=tf.constant(y[i:i + batch_size]), targeted=False,
        rand_init=rand_init, sanity_checks=False).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(x_adv) if x_adv else x
