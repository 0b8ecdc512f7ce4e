"""Scoring attacks by re-running the model: only a point the model really misclassifies counts."""

import numpy as np

from swtf.attack import inputs
from swtf.attack.attacks import ATTACKS
from swtf.errors import SwtfError


def predict_labels(model, x, batch_size=256):
    """The model's argmax class for each input, in batches."""
    x = np.asarray(x, dtype=np.float32)
    return np.concatenate([np.argmax(np.asarray(model(x[i:i + batch_size], training=False)), axis=-1)
                           for i in range(0, len(x), batch_size)] or [np.zeros(0, np.int64)])


def is_adversarial(model, x_adv, y, *, targeted=False, batch_size=256):
    """Per-point success: the model's class differs from `y` (untargeted) or equals it (targeted)."""
    predicted = predict_labels(model, x_adv, inputs.check_count("batch_size", batch_size))
    y = np.asarray(y)
    return predicted == y if targeted else predicted != y


def robust_accuracy(model, x, y, eps, attack="pgd", **kwargs):
    """Fraction of points the model still classifies correctly after `attack` (a name in `ATTACKS`).

    `kwargs` go to the attack (norm, steps, restarts, batch_size, ...). This is an upper bound on
    the true robust accuracy: a stronger attack can only lower it.
    """
    if attack not in ATTACKS:
        raise SwtfError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    if kwargs.get("targeted"):
        raise SwtfError("robust_accuracy measures untargeted robustness; drop targeted=True")
    x_adv = ATTACKS[attack](model, x, y, eps, **kwargs)
    fooled = is_adversarial(model, x_adv, y, batch_size=kwargs.get("batch_size", 256))
    return float(1.0 - np.mean(fooled)) if len(fooled) else float("nan")
