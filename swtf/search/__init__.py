"""Student architecture search with keras-tuner, trained by distillation (see `swtf.search.tuning`)."""

from swtf.search.hypermodel import DistillationHyperModel
from swtf.search.tuning import TUNERS, best_student, distributed_role, make_tuner, trial_rows

__all__ = ["TUNERS", "DistillationHyperModel", "best_student", "distributed_role", "make_tuner", "trial_rows"]
