"""Pruning policies: which filters to remove, as `{conv_layer_name: filter indices}`.

Every policy ranks filters by their L1 norm (`l1_filter_scores`, Li et al. 2017), removes the weakest
first (ties by lower index), and never removes the last filter of a layer.

* `layer_fraction`: the same fraction of every layer's filters.
* `global_fraction`: one fraction of all filters, ranked across layers. Raw L1 sums grow with a filter's
  size (k_h * k_w * C_in weights), so a 3x3x64 filter would always outrank a 3x3x1 one; the ranking uses
  the mean absolute weight, L1 / (k_h * k_w * C_in), which compares layers on one scale. It does not
  undo the initialisers' 1 / sqrt(fan_in) scaling: layers with few inputs (the first convolution) keep
  larger mean weights and are pruned last (on digits' scnn2 at 50%, every removed filter came from
  conv1_2, 64 -> 16, while conv1_1 kept its 32).
* `l1_threshold`: every filter whose L1 norm is below an absolute threshold (the original study's rule).

Fractions are of a *reference* filter count (by default the model's own): an iterative schedule passes
the unpruned model's counts, so that "50%" always means half of the original filters, however many
earlier steps already removed. `sensitivity` prunes each layer alone, to see which layers tolerate it.
"""

import numpy as np

from swtf import train
from swtf.errors import SwtfError
from swtf.prune.graph import layer_graph
from swtf.prune.scores import filter_counts, l1_filter_scores
from swtf.prune.surgery import remove_filters

SENSITIVITY_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _check_fraction(fraction):
    if not 0.0 <= fraction < 1.0:
        raise SwtfError(f"the pruning fraction must be in [0, 1), got {fraction}")


def _weakest(scores, count):
    """Indices of the `count` lowest scores (stable: ties go to the lower index), sorted."""
    return np.sort(np.argsort(scores, kind="stable")[:count])


def _removed_count(fraction, reference_count):
    """Filters a layer of `reference_count` filters loses at `fraction`: floor, at most all but one."""
    return min(int(np.floor(fraction * reference_count + 1e-9)), reference_count - 1)


def layer_fraction(model, fraction, reference=None, layers=None):
    """Removes the weakest filters of each Conv2D layer until it has lost `fraction` of its reference count.

    Args:
      model: the model to prune.
      fraction: share of each layer's reference filters to be gone after this removal, in [0, 1).
      reference: `{layer: filter count}` the fraction is of; defaults to the model's current counts.
      layers: names of the layers to prune; defaults to every Conv2D layer.
    """
    _check_fraction(fraction)
    scores = l1_filter_scores(model)
    reference = reference or {name: s.size for name, s in scores.items()}
    unknown = sorted(set(layers or ()) - set(scores))
    if unknown:
        raise SwtfError(f"no Conv2D layer named {', '.join(unknown)}; the Conv2D layers are {', '.join(scores)}")
    removals = {}
    for name in layers or scores:
        already = reference[name] - scores[name].size
        count = _removed_count(fraction, reference[name]) - already
        if count > 0:
            removals[name] = _weakest(scores[name], count)
    return removals


def normalised_scores(model):
    """Each filter's mean absolute kernel weight, L1 / (k_h * k_w * C_in), per Conv2D layer."""
    sizes = {node.layer.name: int(np.prod(node.layer.kernel.shape[:3])) for node in layer_graph(model).conv_nodes()}
    return {name: s / sizes[name] for name, s in l1_filter_scores(model).items()}


def global_fraction(model, fraction, reference=None):
    """Removes the weakest filters across all Conv2D layers (by `normalised_scores`) until `fraction` of
    the reference total is gone, keeping at least the best filter of every layer."""
    _check_fraction(fraction)
    scores = normalised_scores(model)
    reference = reference or {name: s.size for name, s in scores.items()}
    total = sum(reference.values())
    already = total - sum(s.size for s in scores.values())
    count = int(np.floor(fraction * total + 1e-9)) - already
    best = {name: int(np.argmax(s)) for name, s in scores.items()}
    candidates = [(score, name, index) for name, s in scores.items()
                  for index, score in enumerate(s) if index != best[name]]
    chosen = sorted(candidates, key=lambda c: c[0])[:max(count, 0)]
    removals = {}
    for _, name, index in chosen:
        removals.setdefault(name, []).append(index)
    return {name: np.sort(np.array(idx)) for name, idx in removals.items()}


def l1_threshold(model, threshold):
    """Removes every filter whose L1 norm is below `threshold`, keeping each layer's strongest filter."""
    if not (threshold >= 0 and np.isfinite(threshold)):
        raise SwtfError(f"the L1 threshold must be a non-negative number, got {threshold}")
    removals = {}
    for name, s in l1_filter_scores(model).items():
        below = np.flatnonzero(s < threshold)
        below = below[below != np.argmax(s)]
        if below.size:
            removals[name] = below
    return removals


def sensitivity(model, x_val, y_val, fractions=SENSITIVITY_FRACTIONS, batch_size=256):
    """Validation accuracy as each Conv2D layer alone loses each fraction of its weakest filters.

    Returns:
      Rows `{"layer", "filters", "fraction", "filters_removed", "val_accuracy"}`, one per layer and fraction,
      each layer starting with fraction 0 (the unpruned model's accuracy).
    """
    for fraction in fractions:
        _check_fraction(fraction)
    baseline = train.accuracy(model, x_val, y_val, batch_size)
    rows = []
    for name, count in filter_counts(model).items():
        rows.append({"layer": name, "filters": count, "fraction": 0.0, "filters_removed": 0,
                     "val_accuracy": baseline})
        for fraction in fractions:
            removals = layer_fraction(model, fraction, layers=[name])
            removed = len(removals.get(name, ()))
            pruned = remove_filters(model, removals) if removed else model
            rows.append({"layer": name, "filters": count, "fraction": float(fraction), "filters_removed": removed,
                         "val_accuracy": train.accuracy(pruned, x_val, y_val, batch_size)})
    return rows
