"""Knowledge distillation: losses, the student trainer, temperature ranging and the factors study."""

from swtf.distill.augment import Augmentation, default_augmentation
from swtf.distill.losses import hinton_kd, masked_cross_entropy, matching_logits, soft_target_cross_entropy
from swtf.distill.study import StudyContext, mark_selected, run_member, summarise
from swtf.distill.sweep import SweepMember, expand_sweep, parse_sweep
from swtf.distill.temperature import range_temperatures, select_temperature
from swtf.distill.trainer import DistillSpec, TeacherTargets, distill, teacher_targets

__all__ = ["Augmentation", "DistillSpec", "StudyContext", "SweepMember", "TeacherTargets", "default_augmentation",
           "distill", "expand_sweep", "hinton_kd", "mark_selected", "masked_cross_entropy", "matching_logits",
           "parse_sweep", "range_temperatures", "run_member", "select_temperature", "soft_target_cross_entropy",
           "summarise", "teacher_targets"]
