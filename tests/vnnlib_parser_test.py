"""VNN-LIB parser: boxes, disjunctions (also with the input bounds inside them), linear terms, clear
refusals, and the 75 KB mnistfc files read fast and checked against an independent line-by-line reading."""

import os
import re
import time

import numpy as np
import pytest

from swtf.errors import SwtfError
from swtf.vnnlib import parse_vnnlib, read_vnnlib

HEADER = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"
BOX = "(assert (>= X_0 -1))\n(assert (<= X_0 1.5))\n(assert (<= 0 X_1))\n(assert (>= 2e-1 X_1))\n"


def test_top_level_box_and_one_output_constraint():
    prop = parse_vnnlib(HEADER + BOX + "; a comment (with parentheses\n(assert (<= Y_0 Y_1))")
    (d,) = prop.disjuncts
    np.testing.assert_array_equal(d.lower, [-1, 0])
    np.testing.assert_array_equal(d.upper, [1.5, 0.2])
    np.testing.assert_array_equal(d.matrix, [[1, -1]])
    np.testing.assert_array_equal(d.offset, [0])
    assert prop.violated_by(np.array([[0, 0.1]]), np.array([[1.0, 2.0]]))[0]
    assert not prop.violated_by(np.array([[0, 0.1]]), np.array([[3.0, 2.0]]))[0]
    assert not prop.violated_by(np.array([[2.0, 0.1]]), np.array([[1.0, 2.0]]))[0]  # outside the box


def test_disjunction_of_conjunctions_gives_one_disjunct_each():
    prop = parse_vnnlib(HEADER + BOX + "(assert (or (and (>= Y_0 3) (<= Y_1 -2)) (and (> Y_1 Y_0))))")
    first, second = prop.disjuncts
    np.testing.assert_array_equal(first.matrix, [[-1, 0], [0, 1]])
    np.testing.assert_array_equal(first.offset, [-3, -2])
    np.testing.assert_array_equal(second.matrix, [[1, -1]])
    assert second.strict.tolist() == [True] and not first.strict.any()
    assert not second.satisfied(np.array([[1.0, 1.0]]))[0]  # strict: equality is no counterexample


def test_input_bounds_inside_a_one_disjunct_or_as_in_test_tiny():
    prop = parse_vnnlib("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
                        "(assert (or\n (and (>= X_0 -1) (<= X_0 1) (>= Y_0 100))\n))")
    (d,) = prop.disjuncts
    assert (d.lower[0], d.upper[0]) == (-1, 1)
    np.testing.assert_array_equal(d.matrix, [[-1]])
    np.testing.assert_array_equal(d.offset, [-100])


def test_disjuncts_with_their_own_boxes_and_an_empty_one_dropped():
    prop = parse_vnnlib(HEADER + "(assert (<= X_1 1)) (assert (>= X_1 0))"
                        "(assert (or (and (>= X_0 0) (<= X_0 1) (<= Y_0 0))"
                        "            (and (>= X_0 2) (<= X_0 3) (<= Y_1 0))"
                        "            (and (>= X_0 5) (<= X_0 4) (<= Y_1 0))))")
    assert [(d.lower[0], d.upper[0]) for d in prop.disjuncts] == [(0, 1), (2, 3)]
    np.testing.assert_array_equal(prop.input_hull()[0], [0, 0])
    np.testing.assert_array_equal(prop.input_hull()[1], [3, 1])


def test_linear_terms_with_sums_differences_products_and_chains():
    prop = parse_vnnlib(HEADER + BOX + "(assert (<= (+ Y_0 (* 2 Y_1) (- 1)) (- Y_1 (* 0.5 (+ Y_0 3)))))")
    (d,) = prop.disjuncts  # y0 + 2 y1 - 1 <= y1 - 0.5 y0 - 1.5   <=>   1.5 y0 + y1 <= -0.5
    np.testing.assert_allclose(d.matrix, [[1.5, 1.0]])
    np.testing.assert_allclose(d.offset, [-0.5])
    chained = parse_vnnlib(HEADER + BOX + "(assert (<= Y_0 Y_1 4))").disjuncts[0]
    np.testing.assert_array_equal(chained.matrix, [[1, -1], [0, 1]])
    np.testing.assert_array_equal(chained.offset, [0, 4])


def test_a_false_constant_constraint_leaves_no_disjunct():
    assert parse_vnnlib(HEADER + BOX + "(assert (<= 1 0))").disjuncts == ()


@pytest.mark.parametrize("text,message", [
    (HEADER + BOX + "(assert (<= (+ X_0 X_1) 1))", "not a closed box bound"),
    (HEADER + BOX + "(assert (<= X_0 Y_0))", "mixes inputs and outputs"),
    (HEADER + "(assert (<= X_0 1)) (assert (<= Y_0 0))", "X_0 is not bounded on both sides"),
    (HEADER + BOX + "(assert (<= (* Y_0 Y_1) 0))", "nonlinear term"),
    (HEADER + BOX + "(assert (= Y_0 0))", "unsupported formula"),
    (HEADER + BOX + "(assert (<= Z 0))", "undeclared name 'Z'"),
    (HEADER + BOX + "(assert (<= Y_0 0)", "unbalanced"),
    ("(declare-const X_1 Real)(declare-const Y_0 Real)", "X_0 .. X_n-1"),
    (HEADER + "(define-fun f () Real 0)", "expected declare-const or assert"),
])
def test_unsupported_input_is_refused_with_one_line(text, message):
    with pytest.raises(SwtfError, match=re.escape(message)) as err:
        parse_vnnlib(text)
    assert "\n" not in str(err.value) and str(err.value).startswith("VNN-LIB: ")


def test_mnistfc_property_is_fast_and_matches_an_independent_reading():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "vnncomp", "mnistfc", "prop_7_0.05.vnnlib")
    start = time.perf_counter()
    prop = read_vnnlib(path)
    assert time.perf_counter() - start < 1.0
    text = open(path).read()
    lower, upper = np.zeros(784), np.zeros(784)
    for op, index, value in re.findall(r"\(assert \((<=|>=) X_(\d+) ([-\d.e]+)\)\)", text):
        (upper if op == "<=" else lower)[int(index)] = float(value)
    label = int(re.search(r"label: (\d+)", text).group(1))
    others = [int(j) for j in re.findall(r"\(and \(>= Y_(\d+) Y_\d+\)\)", text)]
    assert len(prop.disjuncts) == 9 and sorted(others) == [j for j in range(10) if j != label]
    for d, j in zip(prop.disjuncts, others):
        np.testing.assert_array_equal(d.lower, lower)
        np.testing.assert_array_equal(d.upper, upper)
        expected = np.zeros(10)
        expected[label], expected[j] = 1, -1  # Y_j >= Y_label  <=>  Y_label - Y_j <= 0
        np.testing.assert_array_equal(d.matrix, [expected])
