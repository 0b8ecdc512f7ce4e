"""A VNN-LIB property in the form the verifier checks: a disjunction of (input box, linear output constraints).

VNN-LIB asserts describe a *counterexample*: the property is violated (`sat`) if some input x in a
disjunct's box gives outputs y with `matrix @ y <= offset` (row i strict where `strict[i]`), and holds
(`unsat`) if no disjunct can be met.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Disjunct:
    """x in [lower, upper] and matrix @ y <= offset (strict rows: <). Shapes (n_in,), (S, n_out), (S,)."""

    lower: np.ndarray
    upper: np.ndarray
    matrix: np.ndarray
    offset: np.ndarray
    strict: np.ndarray

    def contains(self, x):
        """Per row of x (N, n_in): whether it lies in the box."""
        x = np.atleast_2d(x)
        return np.all((x >= self.lower) & (x <= self.upper), axis=1)

    def satisfied(self, y):
        """Per row of y (N, n_out): whether every output constraint holds."""
        values = np.atleast_2d(y) @ self.matrix.T
        return np.all(np.where(self.strict, values < self.offset, values <= self.offset), axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class Property:
    """The disjuncts of a counterexample (none: the property holds trivially)."""

    num_inputs: int
    num_outputs: int
    disjuncts: tuple

    def violated_by(self, x, y):
        """Per row of (x, y): whether it is a counterexample, i.e. meets some disjunct."""
        hits = [d.contains(x) & d.satisfied(y) for d in self.disjuncts]
        return np.any(hits, axis=0) if hits else np.zeros(len(np.atleast_2d(x)), bool)

    def input_hull(self):
        """(lower, upper) of the smallest box holding every disjunct's box."""
        return (np.min([d.lower for d in self.disjuncts], axis=0), np.max([d.upper for d in self.disjuncts], axis=0))
