"""L1 filter pruning: score filters, choose which to remove, remove them, and fine-tune on a schedule.

Policy (`policies`: which filters), schedule (`schedule`: how many, when, with fine-tuning) and surgery
(`surgery`: rebuild the smaller model) are separate, as in tensorflow-model-optimization.
"""

from swtf.models import count_params
from swtf.prune.cost import count_flops
from swtf.prune.plots import plot_accuracy_vs_params, plot_sensitivity
from swtf.prune.policies import global_fraction, l1_threshold, layer_fraction, normalised_scores, sensitivity
from swtf.prune.schedule import PruneStep, constant, distillation_loss, polynomial, prune_iteratively
from swtf.prune.scores import filter_counts, l1_filter_scores
from swtf.prune.surgery import remove_filters

__all__ = ["PruneStep", "constant", "count_flops", "count_params", "distillation_loss", "filter_counts",
           "global_fraction", "l1_filter_scores", "l1_threshold", "layer_fraction", "normalised_scores",
           "plot_accuracy_vs_params", "plot_sensitivity", "polynomial", "prune_iteratively", "remove_filters",
           "sensitivity"]
