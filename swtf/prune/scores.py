"""Filter importance: the L1 norm of each convolution filter's kernel (Li et al., 2017).

Li et al. ("Pruning Filters for Efficient ConvNets", ICLR 2017) rank the filters of a layer by
sum |W| over the filter's kernel (height x width x input channels); filters with small sums produce weak
feature maps and are removed first. The bias is not part of the score.
"""

import numpy as np

from swtf.prune.graph import layer_graph


def l1_filter_scores(model):
    """Maps each `Conv2D` layer's name to its filters' L1 norms, shape `(filters,)`, in model order."""
    scores = {}
    for node in layer_graph(model).conv_nodes():
        kernel = np.asarray(node.layer.kernel)  # (kernel_h, kernel_w, in_channels, filters)
        scores[node.layer.name] = np.abs(kernel).sum(axis=(0, 1, 2))
    return scores


def filter_counts(model):
    """Maps each `Conv2D` layer's name to its number of filters."""
    return {node.layer.name: int(node.layer.filters) for node in layer_graph(model).conv_nodes()}
