"""The public first-order attacks: FGSM, BIM, PGD, MIM and APGD, all on NumPy batches.

Each is one setting of the shared compiled loop in `iterative.py`. Untargeted attacks take the true
labels; with `targeted=True`, `y` holds the target labels. Every returned point lies in the `norm` ball
of radius `eps` around its clean input and in the input box `clip`.

Example:
    x_adv = swtf.attack.pgd(model, x_test, y_test, eps=8 / 255, norm="linf", steps=20, restarts=5)
"""

from swtf.attack import inputs
from swtf.attack.iterative import AttackConfig, run_attack


def pgd(model, x, y, eps, *, norm="linf", steps=40, step_size=None, restarts=1, random_start=True,
        clip=(0.0, 1.0), targeted=False, loss="ce", seed=0, batch_size=256, first_index=0, schedule="constant"):
    """Projected gradient descent (Madry et al., 2018) with random restarts.

    Args:
      model: a Keras model mapping a batch of inputs to logits.
      x: clean inputs, float, shape (N,) + the model's input shape, inside `clip`.
      y: true labels (untargeted) or target labels (targeted), ints of shape (N,).
      eps: radius of the threat ball, >= 0.
      norm: "linf" or "l2".
      steps: gradient steps per restart.
      step_size: step length; defaults to 2.5 * eps / steps (Madry et al.'s rule of thumb).
      restarts: starts (x, then random points); per point the strongest iterate of all is returned.
      random_start: start restarts after the first uniformly in the ball (the first starts at x, see
        `iterative`); False starts every restart at x (BIM's start).
      clip: the valid input box (low, high).
      targeted: whether `y` are targets to reach instead of labels to leave.
      loss: "ce" (cross-entropy) or "margin" (logit margin, Carlini & Wagner).
      seed: seeds the random starts; the same seed and batch size give the same result.
      batch_size: examples attacked at once.
      first_index: `x` is the points first_index.. of a larger set; each point gets the random start it
        gets when the whole set is attacked (so shards of a set reproduce it point for point).
      schedule: "constant" (a fixed step, Madry et al.) or "apgd" (`step_size` is the initial step, halved
        where progress stalls, with momentum: see `apgd`).

    Returns:
      x_adv: float32 array shaped like x.
    """
    eps = inputs.check_radius("eps", eps)
    steps = inputs.check_count("steps", steps)
    step_size = 2.5 * eps / steps if step_size is None else step_size
    config = AttackConfig(norm=norm, steps=steps, restarts=restarts, random_start=random_start, loss=loss,
                          targeted=targeted, clip=clip, schedule=schedule)
    return run_attack(model, x, y, eps, step_size, config, seed=seed, batch_size=batch_size,
                      first_index=first_index)


def bim(model, x, y, eps, *, norm="linf", steps=40, step_size=None, clip=(0.0, 1.0), targeted=False,
        loss="ce", batch_size=256):
    """Basic iterative method (Kurakin et al., 2017): PGD started at x, no restarts. See `pgd`."""
    return pgd(model, x, y, eps, norm=norm, steps=steps, step_size=step_size, restarts=1, random_start=False,
               clip=clip, targeted=targeted, loss=loss, batch_size=batch_size)


def fgsm(model, x, y, eps, *, norm="linf", clip=(0.0, 1.0), targeted=False, loss="ce", batch_size=256):
    """Fast gradient (sign) method (Goodfellow et al., 2015): one full step of length eps from x.

    L-inf: x + eps * sign(grad). L2: x + eps * grad / ||grad||_2. Then clipped to the box.
    """
    return bim(model, x, y, eps, norm=norm, steps=1, step_size=eps, clip=clip, targeted=targeted, loss=loss,
               batch_size=batch_size)


def mim(model, x, y, eps, *, norm="linf", steps=10, step_size=None, decay=1.0, clip=(0.0, 1.0),
        targeted=False, loss="ce", batch_size=256):
    """Momentum iterative method (Dong et al., 2018), started at x.

    g_t = decay * g_{t-1} + grad_t / ||grad_t||_1, and the step follows the steepest-ascent direction
    of g_t. `step_size` defaults to eps / steps, the paper's choice. Other arguments as in `pgd`.
    """
    eps = inputs.check_radius("eps", eps)
    steps = inputs.check_count("steps", steps)
    step_size = eps / steps if step_size is None else step_size
    config = AttackConfig(norm=norm, steps=steps, restarts=1, random_start=False, loss=loss, targeted=targeted,
                          decay=inputs.check_radius("decay", decay), clip=clip)
    return run_attack(model, x, y, eps, step_size, config, batch_size=batch_size)


def apgd(model, x, y, eps, *, norm="linf", steps=100, step_size=None, restarts=1, random_start=True,
         clip=(0.0, 1.0), targeted=False, loss="ce", seed=0, batch_size=256, first_index=0):
    """Auto-PGD (Croce & Hein, 2020): PGD with momentum and a step size halved where progress stalls.

    The first restart starts at x, further ones at random points (as in `pgd`); per point the strongest
    iterate of all is returned. `step_size` is the initial step, 2 * eps by default (the paper's), halved
    per example at the checkpoints described in `swtf.attack.iterative`. Each step costs one gradient, as in
    `pgd`, so equal `steps` and `restarts` are an equal budget. Other arguments as in `pgd`.
    """
    eps = inputs.check_radius("eps", eps)
    return pgd(model, x, y, eps, norm=norm, steps=steps, step_size=2.0 * eps if step_size is None else step_size,
               restarts=restarts, random_start=random_start, clip=clip, targeted=targeted, loss=loss, seed=seed,
               batch_size=batch_size, first_index=first_index, schedule="apgd")


ATTACKS = {"fgsm": fgsm, "bim": bim, "pgd": pgd, "mim": mim, "apgd": apgd}
