"""L1 filter pruning: score filters, choose which to remove, remove them, and fine-tune on a schedule.

Policy (`policies`: which filters), schedule (`schedule`: how many, when, with fine-tuning) and surgery
(`surgery`: rebuild the smaller model) are separate, as in tensorflow-model-optimization.
"""

from swtf.prune.cost import count_flops, count_params
from swtf.prune.scores import filter_counts, l1_filter_scores
from swtf.prune.surgery import remove_filters

__all__ = ["count_flops", "count_params", "filter_counts", "l1_filter_scores", "remove_filters"]
