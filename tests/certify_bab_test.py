"""Branch and bound with beta-CROWN (`bab`, `beta_crown`, `branching`): its verdicts agree with the exact MILP,
its counterexamples are re-checked in float64 and float32, split-domain bounds hold on every sampled point of
their subdomain for any alphas in [0, 1] and betas >= 0, the beta term tightens bounds, the brancher picks
what it documents, and spent budgets give 'unknown', never a verdict."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certify_milp_test import random_model, random_points
from swtf.certify import certified_radius, forward, from_keras, margin_bounds, radius_bracket
from swtf.certify import beta_crown
from swtf.certify.api import verifier_for
from swtf.certify.bab import BranchAndBound, InputSplitting, branch_and_bound, verify_points
from swtf.certify.branching import Brancher
from swtf.certify.exact import misclassified_by_both, verify_exact

SOUND = 1e-9  # slack for the float64 reference evaluation against outward-rounded bounds


def input_box(x0, eps):
    """The L-inf ball of radius eps around x0 intersected with [0, 1]."""
    return np.maximum(x0 - eps, 0.0), np.minimum(x0 + eps, 1.0)


def _randomize(model, seed, scale=0.8):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, scale, w.shape).astype("float32") for w in model.get_weights()])
    return model


def wide_model(seed):
    """4 inputs -> 16 -> 12 -> 3: enough unstable ReLUs that some points need splits."""
    keras.utils.set_random_seed(seed)
    return _randomize(keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                                        keras.layers.Dense(12, activation="relu"), keras.layers.Dense(3)]), seed)


def pool_model(seed):
    """6x6x1 -> conv 3x3 'same' relu -> max pool 2x2 -> dense 6 relu -> 3."""
    keras.utils.set_random_seed(seed)
    return _randomize(keras.Sequential([
        keras.Input((6, 6, 1)), keras.layers.Conv2D(3, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(6, activation="relu"),
        keras.layers.Dense(3)]), seed)


MODELS = {"dense": lambda seed: random_model("dense", seed), "conv": lambda seed: random_model("conv", seed),
          "wide": wide_model, "pool": pool_model}


def labelled_points(model, n, seed):
    x = np.random.default_rng(seed).uniform(0, 1, (n,) + tuple(model.input_shape[1:]))
    return x, np.argmax(forward(from_keras(model), x), axis=1)


def robustness_problem(network, x0, label, eps):
    """(box, rows, thresholds): disjunct p (class j_p != label) is met where f_label - f_j_p <= 0."""
    k = network.output_size
    others = [j for j in range(k) if j != label]
    rows = np.zeros((len(others), 1, k))
    for p, j in enumerate(others):
        rows[p, 0, label], rows[p, 0, j] = 1.0, -1.0
    return input_box(x0, eps), rows, np.zeros((len(others), 1))


def run_bab(model, x0, label, eps, time_limit=20.0, progress=None, **options):
    """(BabResult, box, rows) of the robustness problem of x0."""
    network = from_keras(model)
    box, rows, thresholds = robustness_problem(network, x0, label, eps)
    bab = BranchAndBound(verifier_for(network), box, rows, thresholds,
                         lambda point, p: misclassified_by_both(model, network, point, label), **options)
    return bab.run(time_limit, progress), box, rows


def check_counterexample(model, result, box, rows, label):
    """A 'falsified' result's point lies in the box, meets its disjunct and is misclassified in float64 and float32."""
    point = result.counterexample
    assert point is not None and point.shape == box[0].shape
    assert np.all(point >= box[0]) and np.all(point <= box[1])
    logits64 = forward(from_keras(model), point[None])[0]
    logits32 = np.asarray(model(point[None].astype(np.float32), training=False), np.float64)[0]
    for logits in (logits64, logits32):
        assert np.delete(logits, label).max() > logits[label], (logits, label)
    assert 0 <= result.disjunct < len(rows) and rows[result.disjunct, 0] @ logits64 <= 0
    assert result.lower == -np.inf and result.reason == ""


def check_against_milp(model, x, y, eps, time_limit=20.0, only_open=False):
    """Runs BaB and the MILP on every point (`only_open`: those CROWN does not certify); asserts they never
    contradict each other; returns [(crown certified, milp result, bab result, number of disjuncts)]."""
    exact = verify_exact(model, x, y, eps)
    crown = margin_bounds(model, x, y, eps, method="crown")
    outcomes = []
    for n in range(len(x)):
        if only_open and np.all(crown[n] > 0):
            continue
        result, box, rows = run_bab(model, x[n], y[n], eps, time_limit)
        milp = exact[n]
        context = (n, eps, result, milp)
        if result.status == "verified":
            assert milp.status != "counterexample", context
            assert milp.upper > -SOUND, context  # every point the MILP evaluated has a margin >= 0
            assert result.lower == np.inf and result.counterexample is None and result.reason == ""
        elif result.status == "falsified":
            assert milp.status != "certified", context
            check_counterexample(model, result, box, rows, y[n])
        else:
            assert result.reason, context
        if milp.status == "certified":
            assert result.status != "falsified", context
        if milp.status == "counterexample":
            assert result.status != "verified", context
        outcomes.append((bool(np.all(crown[n] > 0)), milp, result, len(rows)))
    return outcomes


# (model kind, seed, eps): CROWN leaves points open, the MILP decides all of them quickly, and some need splits.
AGREEMENT_CASES = [("conv", 1, 0.1), ("wide", 3, 0.15), ("pool", 2, 0.03),
                   pytest.param("conv", 2, 0.15, marks=pytest.mark.slow),
                   pytest.param("wide", 1, 0.1, marks=pytest.mark.slow)]


@pytest.mark.parametrize("kind,seed,eps", AGREEMENT_CASES)
def test_verdicts_agree_with_the_milp_where_crown_leaves_points_open(kind, seed, eps):
    model = MODELS[kind](seed)
    x, y = labelled_points(model, 4, seed) if kind in ("wide", "pool") else random_points(model, 4, seed)
    outcomes = check_against_milp(model, x[:3], y[:3], eps, only_open=True)
    open_ = [(milp, result, disjuncts) for crown, milp, result, disjuncts in outcomes if not crown]
    assert open_, "CROWN decided every point: the case tests nothing"
    for milp, result, _ in open_:  # on these small cases both are complete within the limits: same verdicts
        assert {"verified": "certified", "falsified": "counterexample"}.get(result.status) == milp.status, \
            (result, milp)
    if kind != "pool":  # BaB needed splits: more domains bounded than the roots, on a point CROWN left open
        assert any(result.status == "verified" and result.domains > disjuncts for _, result, disjuncts in open_)


@pytest.mark.slow
@pytest.mark.parametrize("kind,seed", [(k, s) for k in ("dense", "conv", "wide", "pool") for s in range(4)])
def test_verdicts_agree_with_the_milp_on_more_nets(kind, seed):
    model = MODELS[kind](seed)
    x, y = labelled_points(model, 4, seed) if kind in ("wide", "pool") else random_points(model, 4, seed)
    for eps in (0.03, 0.06, 0.1, 0.15):
        for crown, milp, result, _ in check_against_milp(model, x, y, eps, time_limit=30.0):
            if kind != "pool" and milp.status != "unknown":  # no max-pool splits: pooled nets may stay open
                assert result.status != "unknown", (eps, result, milp)


@st.composite
def relu_models(draw):
    """The recipe of a small random Keras ReLU net: dense, or conv (optionally max-pooled) then dense."""
    if draw(st.booleans()):
        layers = [("input", (draw(st.integers(2, 4)),))]
    else:
        size = draw(st.integers(3, 5))
        layers = [("input", (size, size, 1)),
                  ("conv", draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2)),
                   draw(st.sampled_from(["same", "valid"])))]
        if draw(st.booleans()):
            layers.append(("max_pool", draw(st.integers(1, 2))))
        layers.append(("flatten",))
    for _ in range(draw(st.integers(1, 2))):
        layers.append(("dense", draw(st.integers(2, 8)), "relu"))
    layers.append(("dense", draw(st.integers(2, 3)), None))
    return layers, draw(st.integers(0, 2 ** 31 - 1)), draw(st.sampled_from([0.6, 1.0]))


def build(recipe):
    layers, seed, scale = recipe
    made = []
    for layer in layers:
        if layer[0] == "input":
            made.append(keras.Input(layer[1]))
        elif layer[0] == "conv":
            made.append(keras.layers.Conv2D(layer[1], layer[2], strides=layer[3], padding=layer[4], activation="relu"))
        elif layer[0] == "max_pool":
            made.append(keras.layers.MaxPooling2D(layer[1], padding="same"))
        elif layer[0] == "flatten":
            made.append(keras.layers.Flatten())
        else:
            made.append(keras.layers.Dense(layer[1], activation=layer[2]))
    return _randomize(keras.Sequential(made), seed, scale)


def fuzz_against_milp(recipe, eps, seed):
    model = build(recipe)
    x, y = labelled_points(model, 2, seed)
    check_against_milp(model, x, y, eps, time_limit=5.0)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipe=relu_models(), eps=st.floats(0.02, 0.25), seed=st.integers(0, 2 ** 31))
def test_fuzz_bab_never_contradicts_the_milp(recipe, eps, seed):
    fuzz_against_milp(recipe, eps, seed)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipe=relu_models(), eps=st.floats(0.02, 0.25), seed=st.integers(0, 2 ** 31))
def test_fuzz_bab_never_contradicts_the_milp_slow(recipe, eps, seed):
    fuzz_against_milp(recipe, eps, seed)


def test_a_round_of_only_leaf_domains_does_not_crash():
    """Regression: when every domain picked in a round had all its unstable ReLUs split (all LP leaves), `run`
    called `Brancher.split` with no domains, whose reshape(0, -1) raised ValueError."""
    brancher = Brancher({7: (np.array([[-1.0, 1.0]]), np.array([[1.0, 2.0]]))})
    split = brancher.split({7: np.zeros((0, 2), np.int8)}, np.zeros(0, int), np.zeros(0, int))
    assert split[7].shape == (0, 2)
    model = pool_model(0)
    x, y = labelled_points(model, 4, 0)
    result, box, rows = run_bab(model, x[1], y[1], 0.06, time_limit=1.5)
    assert result.status in ("falsified", "unknown"), result  # the MILP finds a counterexample there
    if result.status == "falsified":
        check_counterexample(model, result, box, rows, y[1])


# ---- beta-CROWN on split domains: soundness against sampled points of each subdomain ----

def root_setup(model, x0, eps):
    network = from_keras(model)
    verifier = verifier_for(network)
    lower, upper = input_box(x0, eps)
    bounds, _ = verifier.intermediate_bounds(beta_crown.box_of(lower[None], upper[None], tf.float64),
                                             tighten_with_ibp=True)
    root = {k: (lo.numpy(), hi.numpy()) for k, (lo, hi) in bounds.items()}
    return network, verifier, (lower, upper), root, beta_crown.relu_inputs(verifier)


def bound(verifier, box, root, spec, signs, alphas, betas, steps):
    d = len(spec)
    inputs = beta_crown.box_of(np.repeat(box[0][None], d, 0), np.repeat(box[1][None], d, 0), tf.float64)
    bounds = {k: (tf.constant(np.repeat(lo, d, 0)), tf.constant(np.repeat(hi, d, 0))) for k, (lo, hi) in root.items()}
    return beta_crown.bound_domains(verifier, inputs, bounds, tf.constant(spec), signs, alphas, betas, steps)


def sample_box(box, anchors, count, rng):
    """Uniform points of the box, its corners' neighbourhood and points near each anchor."""
    shape = box[0].shape
    uniform = rng.uniform(box[0], box[1], (count,) + shape)
    corners = np.where(rng.random((count // 4,) + shape) < 0.5, box[0], box[1])
    width = (box[1] - box[0]) * 0.15
    near = [np.clip(a + rng.uniform(-1, 1, (count // 2,) + shape) * width, *box) for a in anchors]
    return np.concatenate([uniform, corners, anchors] + near)


def split_signs(network, relus, root, anchors, count, rng):
    """Per domain, signs on up to `count` random root-unstable neurons, each the side its anchor lies on (so the
    subdomain is non-empty); the last domain gets random signs."""
    values = forward(network, anchors, return_all=True)
    signs = {r: np.zeros((len(anchors),) + root[k][0].shape[1:], np.int8) for r, k in relus.items()}
    for d in range(len(anchors)):
        candidates = [(r, i) for r, k in relus.items()
                      for i in np.flatnonzero((root[k][0].reshape(-1) < 0) & (root[k][1].reshape(-1) > 0))]
        for c in rng.permutation(len(candidates))[:count]:
            r, i = candidates[c]
            side = 1 if values[relus[r]][d].reshape(-1)[i] >= 0 else -1
            signs[r][d].reshape(-1)[i] = side if d < len(anchors) - 1 else rng.choice([-1, 1])
    return signs


def assert_sound(network, relus, signs, spec, lower, points, minimum_kept=30):
    """lower[d, s] <= <spec[d, s], f(x)> at every sampled x meeting domain d's splits; returns kept counts."""
    values = forward(network, points, return_all=True)
    outputs = values[-1].reshape(len(points), -1)
    kept_counts = []
    for d in range(len(spec)):
        keep = np.ones(len(points), bool)
        for r, k in relus.items():
            z = values[k].reshape(len(points), -1)
            s = signs[r][d].reshape(-1)
            keep &= np.all(s[None] * z >= 0, axis=1)
        kept_counts.append(int(keep.sum()))
        if keep.sum():
            attained = outputs[keep] @ spec[d].reshape(len(spec[d]), -1).T
            assert np.all(lower[d][None] <= attained + SOUND), (d, lower[d], attained.min(0))
    assert sum(c >= minimum_kept for c in kept_counts) >= len(spec) - 1, kept_counts
    return kept_counts


SOUNDNESS_CASES = [("conv", 2, 3, 0.15), ("wide", 3, 1, 0.15), ("pool", 2, 0, 0.03), ("dense", 2, 0, 0.15)]


@pytest.mark.parametrize("kind,seed,point,eps", SOUNDNESS_CASES)
def test_split_domain_bounds_hold_on_every_sampled_point_of_the_subdomain(kind, seed, point, eps):
    model = MODELS[kind](seed)
    x, _ = labelled_points(model, 4, seed) if kind in ("wide", "pool") else random_points(model, 4, seed)
    network, verifier, box, root, relus = root_setup(model, x[point], eps)
    rng = np.random.default_rng(seed)
    d, s, k = 7, 2, network.output_size
    anchors = rng.uniform(box[0], box[1], (d,) + box[0].shape)
    signs = split_signs(network, relus, root, anchors, 4, rng)
    assert sum(int(np.count_nonzero(v)) for v in signs.values()) >= d  # splits were made
    spec = rng.normal(size=(d, s, k))
    points = sample_box(box, anchors, 1500 if kind == "pool" else 3000, rng)
    shapes = {r: (d, s) + root[kk][0].shape[1:] for r, kk in relus.items()}
    alphas = {r: rng.uniform(0, 1, shape) for r, shape in shapes.items()}
    zero = {r: np.zeros(shape) for r, shape in shapes.items()}
    betas = {r: rng.exponential(1.0, shape) for r, shape in shapes.items()}
    large = {r: np.full(shape, 10.0) for r, shape in shapes.items()}
    results = {}
    for name, (b, steps) in {"zero": (zero, 0), "random": (betas, 0), "large": (large, 0),
                             "optimised": (betas, 5)}.items():
        result = bound(verifier, box, root, spec, signs, alphas, b, steps)
        lower = result.lower.numpy()
        assert lower.shape == (d, s) and not np.any(np.isnan(lower))
        assert_sound(network, relus, signs, spec, lower, points)
        results[name] = lower
        for r, shape in shapes.items():  # returned parameters stay in their boxes
            assert result.alphas[r].shape == shape and result.betas[r].shape == shape
            assert np.all(result.alphas[r].numpy() >= 0) and np.all(result.alphas[r].numpy() <= 1)
            assert np.all(result.betas[r].numpy() >= 0)
        points_ = result.points.numpy()  # candidate points lie in the box
        assert np.all(points_ >= box[0]) and np.all(points_ <= box[1])
    # The Lagrangian term is really applied: betas of 10 move the bounds of split domains.
    assert np.max(np.abs(results["large"] - results["zero"])) > 1e-3
    # Optimising never loses the starting bound (the first evaluation is kept).
    assert np.all(results["optimised"] >= results["random"] - SOUND)


def test_optimised_betas_tighten_split_domains_and_the_beta_term_is_what_does_it():
    model = random_model("conv", 2)
    x, y = random_points(model, 4, 2)
    network, verifier, box, root, relus = root_setup(model, x[3], 0.15)
    _, rows, thresholds = robustness_problem(network, x[3], y[3], 0.15)
    brancher = Brancher({r: root[k] for r, k in relus.items()})
    p = len(rows)
    alphas, betas = beta_crown.initial_parameters(
        verifier, {k: tuple(tf.constant(b) for b in root[k]) for k in relus.values()}, 1, 1)
    alphas = {r: np.repeat(a.numpy(), p, 0) for r, a in alphas.items()}
    betas = {r: np.repeat(b.numpy(), p, 0) for r, b in betas.items()}
    signs = {r: np.zeros((p,) + root[k][0].shape[1:], np.int8) for r, k in relus.items()}
    result = bound(verifier, box, root, rows, signs, alphas, betas, beta_crown.STEPS)
    crown = margin_bounds(model, x[3:4], y[3:4], 0.15, method="crown")[0]
    assert not np.all(crown > 0) and np.min(result.lower.numpy()) <= 0  # the root does not verify: splits needed
    spec = rows
    for _ in range(3):  # three levels of splits, children inheriting alphas and (zero) betas
        position, index = brancher.choose(signs, {r: v.numpy() for r, v in result.scores.items()})
        assert np.all(position >= 0)
        twice = np.repeat(np.arange(len(spec)), 2)
        signs = brancher.split({r: v[twice] for r, v in signs.items()}, position[twice], index[twice])
        spec = spec[twice]
        alphas = {r: v.numpy()[twice] for r, v in result.alphas.items()}
        betas = {r: np.zeros_like(v.numpy()[twice]) for r, v in result.betas.items()}
        result = bound(verifier, box, root, spec, signs, alphas, betas, beta_crown.STEPS)
    zero_beta = bound(verifier, box, root, spec, signs, alphas, betas, 0).lower.numpy()
    optimised = result.lower.numpy()
    assert np.all(optimised >= zero_beta - SOUND)
    assert np.any(optimised > zero_beta + 1e-6)
    # At the optimised alphas, the optimised betas beat betas of 0 on some domain: the beta term itself counts.
    opt_alphas = {r: v.numpy() for r, v in result.alphas.items()}
    opt_betas = {r: v.numpy() for r, v in result.betas.items()}
    with_betas = bound(verifier, box, root, spec, signs, opt_alphas, opt_betas, 0).lower.numpy()
    without = bound(verifier, box, root, spec, signs, opt_alphas, {r: np.zeros_like(v) for r, v in opt_betas.items()},
                    0).lower.numpy()
    assert any(np.any(v > 0) for v in opt_betas.values())
    assert np.any(with_betas > without + 1e-6)
    # And all of them are sound on the subdomains.
    rng = np.random.default_rng(0)
    anchors = rng.uniform(box[0], box[1], (8,) + box[0].shape)
    points = sample_box(box, anchors, 4000, rng)
    for lower in (optimised, zero_beta, with_betas, without):
        assert_sound(network, relus, signs, spec, lower, points, minimum_kept=0)


# ---- the brancher, by hand ----

def hand_brancher():
    # relu 3 (shape (1, 3)): unstable [yes, no, yes], intercepts -l u / (u - l) = [0.5, 0, 2/3]
    # relu 9 (shape (1, 1, 2)): unstable [yes, yes], intercepts [0.75, 0.5]
    return Brancher({3: (np.array([[-1.0, 0.5, -2.0]]), np.array([[1.0, 2.0, 1.0]])),
                     9: (np.array([[[-3.0, -1.0]]]), np.array([[[1.0, 1.0]]]))})


def test_brancher_chooses_the_best_score_then_the_widest_triangle_then_leaves():
    brancher = hand_brancher()
    np.testing.assert_allclose(brancher.intercept, [0.5, 0.0, 2 / 3, 0.75, 0.5])
    scores = {3: np.array([[0.0, 5.0, 1.0],       # the stable neuron's 5 is ignored; 2 on relu 9 wins
                           [0.0, 0.0, 0.0],       # no positive score: widest triangle, relu 9 neuron 0
                           [0.0, 0.0, 0.0],       # same, but relu 9 neuron 0 is split: relu 3 neuron 2
                           [0.0, 0.0, 0.0],       # a positive score only on a split neuron: fallback
                           [1.0, 0.0, 1.0],       # everything unstable is split: a leaf
                           [-1.0, 0.0, -2.0],     # negative scores only: fallback
                           [np.nan, 0.0, 0.25],   # NaN counts as 0
                           [np.inf, 0.0, 0.25],   # so does inf
                           [0.3, 0.0, 0.25]]),    # plain best score on relu 3
              9: np.array([[[2.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]], [[9.0, 0.0]], [[1.0, 1.0]],
                           [[-3.0, -0.5]], [[0.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.1]]])}
    signs = {3: np.zeros((9, 3), np.int8), 9: np.zeros((9, 1, 2), np.int8)}
    signs[9][2, 0, 0] = 1
    signs[9][3, 0, 0] = -1
    signs[3][4, [0, 2]] = [1, -1]
    signs[9][4, 0] = [-1, 1]
    position, index = brancher.choose(signs, scores)
    expected = [(1, 0), (1, 0), (0, 2), (0, 2), None, (1, 0), (0, 2), (0, 2), (0, 0)]
    for d, want in enumerate(expected):
        if want is None:
            assert position[d] == -1, d
        else:
            assert (position[d], index[d]) == want, (d, position[d], index[d])


def test_brancher_split_sets_active_then_inactive_in_consecutive_copies():
    brancher = hand_brancher()
    signs = {3: np.array([[0, 0, 0], [1, 0, 0]], np.int8), 9: np.array([[[0, 0]], [[0, -1]]], np.int8)}
    before = {r: v.copy() for r, v in signs.items()}
    twice = np.array([0, 0, 1, 1])
    children = brancher.split({r: v[twice] for r, v in signs.items()}, np.array([0, 0, 1, 1]),
                              np.array([2, 2, 0, 0]))
    np.testing.assert_array_equal(children[3], [[0, 0, 1], [0, 0, -1], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(children[9], [[[0, 0]], [[0, 0]], [[1, -1]], [[-1, -1]]])
    for r in signs:
        np.testing.assert_array_equal(signs[r], before[r])
        assert children[r].dtype == np.int8


# ---- budgets ----

def test_spent_budgets_give_unknown_with_a_reason_never_a_verdict():
    model = random_model("conv", 2)
    x, y = random_points(model, 4, 2)
    open_counts = []
    full, _, rows = run_bab(model, x[3], y[3], 0.15, progress=lambda open_, bounded, lower: open_counts.append(open_))
    assert full.status == "verified" and full.domains > len(rows)  # needs splits to verify
    most = max(open_counts)
    assert most >= 1
    # The budget is "more than max_domains open": one less than the most ever open stops it, the most does not.
    for options, time_limit, words in (({}, 1e-9, "time limit"), ({"max_domains": most - 1}, 20.0, "open domains")):
        result, _, _ = run_bab(model, x[3], y[3], 0.15, time_limit=time_limit, **options)
        assert result.status == "unknown" and words in result.reason, (options, result)
        assert result.counterexample is None and result.disjunct == -1 and result.lower <= 0
        assert result.domains < full.domains
    again, _, _ = run_bab(model, x[3], y[3], 0.15, max_domains=most)
    assert again.status == "verified" and again.domains == full.domains


# ---- input splitting (inputs of few dimensions) ----

def low_dimensional_model(seed):
    """5 -> 3 x 30 relu -> 5, ACAS Xu's shape in small: few inputs, several layers."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((5,))] + [keras.layers.Dense(30, activation="relu") for _ in range(3)]
                            + [keras.layers.Dense(5)])


@pytest.mark.parametrize("seed, eps", [(0, 0.1), (1, 0.1)])
def test_input_splitting_verdicts_agree_with_the_milp(seed, eps):
    """Points CROWN leaves open on a 5-input net go to input splitting; each verdict matches the MILP's, every
    counterexample is re-checked, and (seed 1) a verified point needed more sub-boxes than its disjuncts."""
    model = low_dimensional_model(seed)
    network = from_keras(model)
    x, y = labelled_points(model, 6, seed)
    open_ = ~(margin_bounds(network, x, y, eps) > 0).all(axis=1)
    x, y = x[open_], y[open_]
    assert len(x), "the case must leave points open for CROWN"
    verifier = verifier_for(network)
    box, rows, thresholds = robustness_problem(network, x[0], y[0], eps)
    assert isinstance(branch_and_bound(verifier, box, rows, thresholds, lambda point, p: False), InputSplitting)
    boxes = (np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1))
    results = verify_points(model, verifier, x, y, boxes, 60)
    exact = verify_exact(network, x, y, eps, time_limit=120)
    split = False
    for n, (result, truth) in enumerate(zip(results, exact)):
        assert {"verified": "certified", "falsified": "counterexample"}.get(result.status) == truth.status, (n, result)
        if result.status == "falsified":
            check_counterexample(model, result, (boxes[0][n], boxes[1][n]), rows_of(y[n], 5), y[n])
        split |= result.status == "verified" and result.domains > 4
    assert split or seed == 0


def rows_of(label, num_classes):
    """The robustness rows of `robustness_problem`, in the order `bab.robustness_problem` gives them."""
    others = [j for j in range(num_classes) if j != label]
    rows = np.zeros((len(others), 1, num_classes))
    rows[np.arange(len(others)), 0, label] = 1.0
    rows[np.arange(len(others)), 0, others] = -1.0
    return rows


def test_input_splitting_halves_the_costliest_dimension():
    """Children of a sub-box are its two halves along the dimension of largest |a_j| (u_j - l_j)."""
    model = low_dimensional_model(0)
    verifier = verifier_for(from_keras(model))
    search = InputSplitting(verifier, (np.zeros(5), np.ones(5)), rows_of(0, 5), np.zeros((4, 1)),
                            lambda point, p: False)
    picked = {"owner": np.array([0]), "lower": np.array([[0.0, 0.2, 0.0, 0.0, 0.0]]),
              "upper": np.array([[1.0, 0.4, 1.0, 1.0, 0.5]]), "gap": np.array([-1.0]),
              "weights": np.array([[0.1, 10.0, 0.2, 0.0, 1.0]])}
    children, found, leaves = search._branch(picked, deadline=np.inf)
    assert found is None and leaves == 0
    # scores |a| * width: 0.1, 2.0, 0.2, 0, 0.5 -> dimension 1 is halved at 0.3
    np.testing.assert_allclose(children["lower"], [[0.0, 0.2, 0.0, 0.0, 0.0], [0.0, 0.3, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(children["upper"], [[1.0, 0.3, 1.0, 1.0, 0.5], [1.0, 0.4, 1.0, 1.0, 0.5]])
    np.testing.assert_array_equal(children["owner"], [0, 0])


# ---- radii ----

@pytest.mark.parametrize("kind, seed", [("dense", 0), ("conv", 1)])
def test_bab_radius_is_the_milp_radius_within_the_bisection_tolerance(kind, seed):
    """crown <= alpha <= bab <= attack radius per point, and the bab radius is exact: MILP certifies its ball
    and finds a counterexample in the ball one tolerance wider (dense: input splitting; conv: ReLU splits)."""
    model = random_model(kind, seed)
    network = from_keras(model)
    x, y = random_points(model, 3, seed)
    tol, top = 2e-3, 0.5
    crown = certified_radius(network, x, y, method="crown", max_radius=top, tol=tol)
    alpha = certified_radius(network, x, y, method="alpha-crown", max_radius=top, tol=tol)
    bracket = radius_bracket(model, x, y, method="bab", max_radius=top, tol=tol, timeout_per_point=60)
    assert np.all(crown <= alpha + 1e-12) and np.all(alpha <= bracket.certified + 1e-12)
    assert np.all(bracket.certified <= bracket.attack)
    inside = verify_exact(network, x, y, bracket.certified, time_limit=120)
    wider = verify_exact(network, x, y, np.minimum(bracket.certified + tol, top), time_limit=120)
    for n in range(len(x)):
        assert inside[n].status == "certified", (n, inside[n])
        if bracket.certified[n] + tol < top:
            assert wider[n].status == "counterexample", (n, bracket.certified[n], wider[n])
    assert np.any(bracket.certified > alpha + tol), "the case must be one where branching moves the radius"


def test_a_network_without_relus_is_searched_without_splits():
    """A tanh network has nothing to split: its domains are leaves without an LP (tanh has no exact
    encoding), so BaB verifies only what its root bound proves, falsifies with re-checked points, and
    otherwise says 'unknown' with the reason."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)])
    network = from_keras(model)
    x, y = labelled_points(model, 4, 0)
    statuses = set()
    for eps in (0.001, 0.05, 0.2):
        boxes = (np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1))
        for n, result in enumerate(verify_points(model, verifier_for(network), x, y, boxes, 5)):
            statuses.add(result.status)
            if result.status == "falsified":
                check_counterexample(model, result, (boxes[0][n], boxes[1][n]), rows_of(y[n], 3), y[n])
            if result.status == "unknown":
                assert "leaves undecided" in result.reason or "time limit" in result.reason
    assert {"verified", "falsified"} <= statuses
