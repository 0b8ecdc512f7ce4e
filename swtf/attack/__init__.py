"""Adversarial attacks on Keras classifiers: FGSM, BIM, PGD, MIM, APGD, and their scoring.

The implementation lives in the modules beside this one; this file only re-exports the public names.
"""

from swtf.attack.attacks import ATTACKS, apgd, bim, fgsm, mim, pgd
from swtf.attack.evaluation import is_adversarial, predict_labels, robust_accuracy

__all__ = ["ATTACKS", "apgd", "bim", "fgsm", "is_adversarial", "mim", "pgd", "predict_labels", "robust_accuracy"]
