"""Which ReLU a branch-and-bound domain splits next, and the two children of a split.

The score of an unstable, unsplit neuron is beta-CROWN's gradient estimate (`beta_crown.DomainBounds.scores`)
of what its upper line's intercept costs the domain's bound: a split makes the neuron exact in both children,
which removes that term (BaBSR's intercept score, Bunel et al., JMLR 2020). Where no candidate of a domain
has a positive score (its bound does not read them through an upper line), the candidate with the largest
root intercept -l u / (u - l) is split: the widest relaxation triangle. A domain with no candidate left is a
leaf (every unstable ReLU split): `choose` returns -1 for it.
"""

import numpy as np


class Brancher:
    """Splitting decisions over the ReLUs that are unstable at the root.

    Args:
      root_bounds: {relu id: (lower, upper)} of each ReLU's input at the root, (1, *shape) NumPy arrays.
    """

    def __init__(self, root_bounds):
        self.ids = list(root_bounds)
        self.shapes = [root_bounds[r][0].shape[1:] for r in self.ids]
        unstable, intercept = [], []
        for r in self.ids:
            lower, upper = (np.reshape(b, -1) for b in root_bounds[r])
            open_ = (lower < 0) & (upper > 0)
            unstable.append(open_)
            intercept.append(np.where(open_, -lower * upper / np.where(open_, upper - lower, 1.0), 0.0))
        self.unstable = np.concatenate(unstable) if unstable else np.zeros(0, bool)
        self.intercept = np.concatenate(intercept) if intercept else np.zeros(0)
        self.unstable_sizes = [u.size for u in unstable]
        self.offsets = np.cumsum([0] + self.unstable_sizes)

    def _flat(self, values):
        return np.concatenate([np.reshape(values[r], (len(values[r]), self.unstable_sizes[p]))
                               for p, r in enumerate(self.ids)], axis=1)

    def choose(self, signs, scores):
        """(relu position in `ids` or -1 for a leaf, flat neuron index), each (D,), for D domains'
        {relu id: (D, *shape)} split signs and scores."""
        candidate = self.unstable[None] & (self._flat(signs) == 0)
        score = np.where(candidate, np.nan_to_num(self._flat(scores), nan=0.0, posinf=0.0, neginf=0.0), -np.inf)
        fallback = np.where(candidate, self.intercept[None], -np.inf)
        scored = np.max(score, axis=1, initial=-np.inf) > 0
        best = np.where(scored, np.argmax(score, axis=1), np.argmax(fallback, axis=1))
        leaf = ~candidate.any(axis=1)
        position = np.searchsorted(self.offsets, best, side="right") - 1
        return np.where(leaf, -1, position), best - self.offsets[np.clip(position, 0, len(self.ids) - 1)]

    def split(self, signs, positions, indices):
        """Copies of `signs` (each domain listed twice, consecutively) with neuron `indices` of relu `positions`
        set active (+1) in the first copy and inactive (-1) in the second."""
        signs = {r: s.copy() for r, s in signs.items()}
        side = np.where(np.arange(len(positions)) % 2 == 0, 1, -1).astype(np.int8)
        for p, r in enumerate(self.ids):
            rows = np.flatnonzero(positions == p)
            flat = signs[r].reshape((len(signs[r]), self.unstable_sizes[p]))
            flat[rows, indices[rows]] = side[rows]
        return signs
