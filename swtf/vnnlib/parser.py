"""VNN-LIB parser: `read_vnnlib(path)` / `parse_vnnlib(text)` -> `Property`.

Supported (the VNN-COMP subset): `(declare-const X_i Real)` / `(declare-const Y_j Real)` with indices
0..n-1, and `(assert F)` where F is a comparison `<=`, `>=`, `<`, `>` of linear terms (numbers, X_i,
Y_j, `+`, `-`, `*` by a constant), or `and` / `or` of formulas. The conjunction of all asserts is put in
disjunctive normal form; in each disjunct a comparison may constrain the inputs only if it bounds one
X_i (a box), or the outputs only (a linear inequality over the Y_j); every X_i must end up bounded on
both sides. Anything else is refused with one line. Comments start with `;`.
"""

import re

import numpy as np

from swtf.errors import SwtfError
from swtf.vnnlib.property import Disjunct, Property

MAX_DISJUNCTS = 100_000
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_VARIABLE = re.compile(r"([XY])_(\d+)$")
_COMPARISONS = ("<=", ">=", "<", ">")


def _fail(message):
    raise SwtfError(f"VNN-LIB: {message}")


def _expressions(text):
    """The top-level S-expressions of `text` as nested lists of token strings."""
    stack, top = [], []
    for token in _TOKEN.findall(re.sub(r";[^\n]*", "", text)):
        if token == "(":
            stack.append([])
        elif token == ")":
            if not stack:
                _fail("unbalanced ')'")
            done = stack.pop()
            (stack[-1] if stack else top).append(done)
        else:
            (stack[-1] if stack else top).append(token)
    if stack:
        _fail("unbalanced '(' (the file ends inside an expression)")
    return top


def _show(expr):
    return expr if isinstance(expr, str) else "(" + " ".join(_show(e) for e in expr) + ")"


def _linear(term, variables):
    """({variable: coefficient}, constant) of a linear term."""
    if isinstance(term, str):
        if term in variables:
            return {term: 1.0}, 0.0
        try:
            return {}, float(term)
        except ValueError:
            _fail(f"undeclared name {term!r}")
    if not term:
        _fail("empty term ()")
    head, args = term[0], [_linear(a, variables) for a in term[1:]]
    if head == "+" and args:
        return _combine(args, [1.0] * len(args))
    if head == "-" and args:
        return _combine(args, [-1.0] if len(args) == 1 else [1.0] + [-1.0] * (len(args) - 1))
    if head == "*" and args:
        variable_factors = [a for a in args if a[0]]
        if len(variable_factors) > 1:
            _fail(f"nonlinear term {_show(term)}")
        factor = float(np.prod([a[1] for a in args if not a[0]]))
        coeffs, const = variable_factors[0] if variable_factors else ({}, 1.0)
        return {v: c * factor for v, c in coeffs.items()}, const * factor
    _fail(f"unsupported term {_show(term)} (linear terms use numbers, X_i, Y_j, +, - and * by a constant)")


def _combine(terms, signs):
    coeffs, const = {}, 0.0
    for (c, k), sign in zip(terms, signs):
        for v, value in c.items():
            coeffs[v] = coeffs.get(v, 0.0) + sign * value
        const += sign * k
    return coeffs, const


def _dnf(formula, variables):
    """The formula as a list of conjunctions, each a list of atoms ({var: coeff}, const, strict): sum + const <= 0."""
    if isinstance(formula, str) or not formula:
        _fail(f"expected a formula, got {_show(formula)}")
    head, args = formula[0], formula[1:]
    if head == "and":
        result = [[]]
        for arg in args:
            result = [a + b for a in result for b in _dnf(arg, variables)]
            if len(result) > MAX_DISJUNCTS:
                _fail(f"more than {MAX_DISJUNCTS} disjuncts in disjunctive normal form")
        return result
    if head == "or":
        return [conjunction for arg in args for conjunction in _dnf(arg, variables)]
    if head in _COMPARISONS and len(args) >= 2:
        terms = [_linear(a, variables) for a in args]
        atoms = []
        for left, right in zip(terms, terms[1:]):  # chained comparisons hold pairwise
            small, large = (left, right) if head in ("<=", "<") else (right, left)
            atoms.append((*_combine([small, large], [1.0, -1.0]), head in ("<", ">")))
        return [atoms]
    _fail(f"unsupported formula {_show(formula)} (use <=, >=, <, >, and, or)")


def _declarations(expressions):
    names = {}
    for expr in expressions:
        if expr[:1] == ["declare-const"]:
            match = _VARIABLE.match(expr[1]) if len(expr) == 3 else None
            if match is None or expr[2] != "Real":
                _fail(f"expected (declare-const X_i Real) or (declare-const Y_j Real), got {_show(expr)}")
            names[expr[1]] = (match.group(1), int(match.group(2)))
        elif expr[:1] != ["assert"] or len(expr) != 2:
            _fail(f"expected declare-const or assert, got {_show(expr)[:80]}")
    counts = {}
    for kind in "XY":
        indices = sorted(i for k, i in names.values() if k == kind)
        if indices != list(range(len(indices))) or not indices:
            _fail(f"the {kind}_i must be declared as {kind}_0 .. {kind}_n-1, got {len(indices)} with gaps or none")
        counts[kind] = len(indices)
    return names, counts["X"], counts["Y"]


class _Builder:
    """Turns atoms into boxes and output rows, refusing anything that is neither."""

    def __init__(self, names, num_inputs, num_outputs):
        self.names, self.num_inputs, self.num_outputs = names, num_inputs, num_outputs

    def split(self, atoms):
        """(input bounds [(index, is_upper, value)], output rows [(row, offset, strict)], always false)."""
        bounds, rows, impossible = [], [], False
        for coeffs, const, strict in atoms:
            coeffs = {v: c for v, c in coeffs.items() if c != 0.0}
            kinds = {self.names[v][0] for v in coeffs}
            if kinds == {"X"}:
                if len(coeffs) != 1 or strict:
                    _fail(f"an input constraint over {sorted(coeffs)} is not a closed box bound; only (<= X_i c) "
                          "style bounds may constrain the inputs")
                (name, coeff), = coeffs.items()
                bounds.append((self.names[name][1], coeff > 0, -const / coeff))
            elif kinds == {"Y"}:
                row = np.zeros(self.num_outputs)
                for name, coeff in coeffs.items():
                    row[self.names[name][1]] = coeff
                rows.append((row, 0.0 - const, strict))
            elif kinds:
                _fail(f"a constraint mixes inputs and outputs ({', '.join(sorted(coeffs))})")
            elif (const >= 0) if strict else (const > 0):
                impossible = True
        return bounds, rows, impossible

    def box(self, bounds, lower=None, upper=None):
        lower = np.full(self.num_inputs, -np.inf) if lower is None else lower.copy()
        upper = np.full(self.num_inputs, np.inf) if upper is None else upper.copy()
        for index, is_upper, value in bounds:
            if is_upper:
                upper[index] = min(upper[index], value)
            else:
                lower[index] = max(lower[index], value)
        return lower, upper


def parse_vnnlib(text):
    """The `Property` of VNN-LIB `text` (raises SwtfError with one line on anything unsupported)."""
    expressions = _expressions(text)
    names, num_inputs, num_outputs = _declarations(expressions)
    builder = _Builder(names, num_inputs, num_outputs)
    common, alternatives = [], []
    for expr in expressions:
        if expr[0] == "assert":
            dnf = _dnf(expr[1], names)
            if len(dnf) == 1:
                common.extend(dnf[0])
            else:
                alternatives.append(dnf)
    common_bounds, common_rows, never = builder.split(common)
    lower, upper = builder.box(common_bounds)
    conjunctions = [[]]
    for dnf in alternatives:
        conjunctions = [a + b for a in conjunctions for b in dnf]
        if len(conjunctions) > MAX_DISJUNCTS:
            _fail(f"more than {MAX_DISJUNCTS} disjuncts in disjunctive normal form")
    disjuncts = []
    for conjunction in ([] if never else conjunctions):
        bounds, rows, impossible = builder.split(conjunction)
        box = builder.box(bounds, lower, upper)
        unbounded = np.flatnonzero(~np.isfinite(box[0]) | ~np.isfinite(box[1]))
        if len(unbounded):
            _fail(f"X_{unbounded[0]} is not bounded on both sides (every input needs a box)")
        if impossible or np.any(box[0] > box[1]):
            continue  # an empty disjunct: no counterexample can meet it
        rows = common_rows + rows
        matrix = np.array([r for r, _, _ in rows]).reshape(len(rows), num_outputs)
        disjuncts.append(Disjunct(box[0], box[1], matrix, np.array([o for _, o, _ in rows], np.float64),
                                  np.array([s for _, _, s in rows], bool)))
    return Property(num_inputs, num_outputs, tuple(disjuncts))


def read_vnnlib(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as err:
        raise SwtfError(f"cannot read VNN-LIB file {path}: {err.strerror}") from None
    return parse_vnnlib(text)
