"""FGSM, BIM, PGD, MIM and APGD of `swtf.attack`: threat-model constraints, closed forms and a NumPy re-run."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import swtf.attack
from swtf.attack import iterative
from swtf.errors import SwtfError
from swtf.models import LayerStack, build

SHAPE = (4, 4, 1)
NORMS = ("linf", "l2")


@pytest.fixture(scope="module")
def mlp():
    return build("snn", SHAPE, 5, width=16, seed=0)


@pytest.fixture(scope="module")
def images():
    """Random images in [0, 1] with a third of the pixels exactly 0 or 1, so the box constraint binds."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(40,) + SHAPE).astype(np.float32)
    at_edge = rng.uniform(size=x.shape) < 0.3
    x[at_edge] = rng.integers(0, 2, size=at_edge.sum())
    return x, rng.integers(0, 5, size=40)


def _lp(delta, norm):
    flat = delta.reshape(len(delta), -1)
    return np.abs(flat).max(axis=1) if norm == "linf" else np.linalg.norm(flat, axis=1)


def _logits(model, x):
    return np.asarray(model(x, training=False), dtype=np.float64)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("attack", sorted(swtf.attack.ATTACKS))
@pytest.mark.parametrize("eps", [0.03, 0.5, 2.0])
def test_points_lie_in_ball_and_box(mlp, images, attack, norm, eps):
    x, y = images
    x_adv = swtf.attack.ATTACKS[attack](mlp, x, y, eps, norm=norm)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert np.all(_lp(x_adv.astype(np.float64) - x, norm) <= eps)  # exactly, not up to float32 rounding
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_clip_box_other_than_unit(mlp, images):
    x, y = images
    x_adv = swtf.attack.pgd(mlp, x * 0.5 + 0.25, y, 0.5, clip=(0.25, 0.75), steps=5)
    assert x_adv.min() >= 0.25 and x_adv.max() <= 0.75


@pytest.mark.parametrize("attack", sorted(swtf.attack.ATTACKS))
@pytest.mark.parametrize("norm", NORMS)
def test_eps_zero_returns_x_and_succeeds_exactly_on_clean_errors(mlp, images, attack, norm):
    x, y = images
    x_adv = swtf.attack.ATTACKS[attack](mlp, x, y, 0.0, norm=norm)
    np.testing.assert_array_equal(x_adv, x)
    clean_error = np.mean(_logits(mlp, x).argmax(1) != y)
    assert np.mean(swtf.attack.is_adversarial(mlp, x_adv, y)) == clean_error
    assert swtf.attack.robust_accuracy(mlp, x, y, 0.0, attack=attack, norm=norm) == 1 - clean_error


def _linear_model(w0, w1):
    """Two-class linear model z = [w0 . x, w1 . x] on 2x2x1 images."""
    dense = keras.layers.Dense(2, name="logits")
    model = LayerStack([keras.layers.Flatten(), dense], (2, 2, 1))
    dense.set_weights([np.stack([w0, w1], axis=1).astype(np.float32), np.zeros(2, np.float32)])
    return model


def test_fgsm_on_a_linear_model_matches_the_closed_form():
    """For label 0, grad_x CE = p_1 (w1 - w0), so the L-inf step is eps * sign(w1 - w0), then the box.

    w1 - w0 = (-2, 3, 0, -2): the first pixel drops by eps, the second rises into the box's top, the
    third has zero weight, hence an exactly zero gradient, and stays; the fourth drops into the box's
    bottom.
    """
    model = _linear_model(w0=[1.0, -2.0, 0.0, 3.0], w1=[-1.0, 1.0, 0.0, 1.0])
    x = np.array([0.5, 0.95, 0.2, 0.05], np.float32).reshape(1, 2, 2, 1)
    x_adv = swtf.attack.fgsm(model, x, [0], 0.1)
    np.testing.assert_allclose(x_adv.ravel(), [0.4, 1.0, 0.2, 0.0], atol=1e-7)
    # The targeted step towards class 1 descends CE(1), whose gradient is p_0 (w0 - w1): the same step.
    np.testing.assert_array_equal(swtf.attack.fgsm(model, x, [1], 0.1, targeted=True), x_adv)
    # L2: the step is eps * (w1 - w0) / ||w1 - w0||_2 = 0.17 * (-2, 3, 0, -2) / sqrt(17).
    x = np.full((1, 2, 2, 1), 0.5, np.float32)
    x_adv = swtf.attack.fgsm(model, x, [0], 0.17, norm="l2")
    np.testing.assert_allclose(x_adv.ravel(), 0.5 + 0.17 * np.array([-2, 3, 0, -2]) / np.sqrt(17), atol=1e-6)


class _NumpySnn:
    """An independent float64 `snn` (Dense-ReLU-Dense) with hand-written gradients, for re-running attacks.

    Gradients by hand: dCE/dz = softmax(z) - onehot(y), back through the ReLU layer. Tracks per point the
    strongest of the iterates it is shown: successful first, then lowest margin z_y - max_{j!=y} z_j.
    """

    def __init__(self, model, x, y, eps, norm):
        (self.w1, self.b1), (self.w2, self.b2) = [[np.float64(w) for w in layer.get_weights()]
                                                  for layer in model.ordered_layers[1:]]
        self.x0 = x.reshape(len(x), -1).astype(np.float64)
        self.onehot = np.eye(self.w2.shape[1])[y]
        self.y, self.eps, self.norm = y, eps, norm
        self.best_x, self.best_key = self.x0.copy(), np.full((len(x), 2), np.inf)

    def cross_entropy_and_gradient(self, x_t, track):
        pre = x_t @ self.w1 + self.b1
        z = np.maximum(pre, 0) @ self.w2 + self.b2
        if track:
            margin = (z * self.onehot).sum(1) - np.where(self.onehot > 0, -np.inf, z).max(1)
            key = np.stack([z.argmax(1) == self.y, margin], axis=1)  # (not successful, margin), lexicographic
            better = (key[:, 0] < self.best_key[:, 0]) | ((key[:, 0] == self.best_key[:, 0])
                                                         & (key[:, 1] < self.best_key[:, 1]))
            self.best_x[better], self.best_key[better] = x_t[better], key[better]
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return -np.log((p * self.onehot).sum(1)), (((p - self.onehot) @ self.w2.T) * (pre > 0)) @ self.w1.T

    def step(self, x_t, size, velocity):
        """Projection of x_t + size * (steepest ascent along velocity) onto the ball and the box."""
        if self.norm == "linf":
            direction = np.sign(velocity)
        else:
            direction = velocity / np.linalg.norm(velocity, axis=1, keepdims=True)
        return self.project(x_t + size * direction)

    def project(self, x_t):
        delta = x_t - self.x0
        if self.norm == "linf":
            delta = np.clip(delta, -self.eps, self.eps)
        else:
            delta *= np.minimum(1, self.eps / np.linalg.norm(delta, axis=1, keepdims=True))
        return np.clip(self.x0 + delta, 0, 1)


def _numpy_attack(model, x, y, eps, step_size, steps, norm, decay):
    """An independent float64 re-run of the iterative attack (BIM, MIM) on `snn`, from x."""
    net = _NumpySnn(model, x, y, eps, norm)
    x_t, velocity = net.x0.copy(), np.zeros_like(net.x0)
    for t in range(steps):
        grad = net.cross_entropy_and_gradient(x_t, track=True)[1]
        velocity = decay * velocity + grad / np.abs(grad).sum(1, keepdims=True)
        x_t = net.step(x_t, step_size, velocity)
    net.cross_entropy_and_gradient(x_t, track=True)
    return net.best_x.reshape(x.shape)


def _numpy_apgd(model, x, y, eps, steps, norm):
    """APGD (Croce & Hein 2020, Algorithm 1) from x in float64: step 2 * eps, halved per point at the
    checkpoints when under 75% of the steps since the last one rose, or when neither the step nor the best
    loss changed since then, going back to the best point; momentum 0.75 from the second step on."""
    net = _NumpySnn(model, x, y, eps, norm)
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    checkpoints = {int(np.ceil(round(q * steps, 9))) for q in p[1:]}
    x_t = x_prev = net.x0.copy()
    eta = np.full((len(x), 1), 2.0 * eps)
    rises, last, eta_then = np.zeros(len(x)), 0, eta.copy()
    for t in range(steps):
        loss, grad = net.cross_entropy_and_gradient(x_t, track=True)
        if t == 0:
            loss_max, x_max, grad_max, loss_prev = loss.copy(), x_t.copy(), grad.copy(), loss.copy()
            loss_max_then = loss_max.copy()
        else:
            rises += loss > loss_prev
            up = loss > loss_max
            loss_max[up], x_max[up], grad_max[up] = loss[up], x_t[up], grad[up]
            loss_prev = loss
        if t in checkpoints:
            halve = (rises < 0.75 * (t - last)) | ((eta[:, 0] == eta_then[:, 0]) & (loss_max == loss_max_then))
            eta_then, loss_max_then = eta.copy(), loss_max.copy()
            eta[halve] /= 2
            x_t, grad, x_prev = x_t.copy(), grad.copy(), x_prev.copy()
            x_t[halve], grad[halve], x_prev[halve] = x_max[halve], grad_max[halve], x_max[halve]
            loss_prev = np.where(halve, loss_max, loss_prev)
            rises, last = np.zeros(len(x)), t
        z = net.step(x_t, eta, grad)
        momentum = 0.75 if t > 0 else 1.0
        x_prev, x_t = x_t, net.project(x_t + momentum * (z - x_t) + (1 - momentum) * (x_t - x_prev))
    net.cross_entropy_and_gradient(x_t, track=True)
    return net.best_x.reshape(x.shape)


def test_apgd_checkpoints_follow_the_paper():
    """p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): for 100 steps 22, 41, 57, 70,
    80, 87, 93, 99 (worked by hand); checkpoints at or past the last step are dropped."""
    assert iterative.apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert iterative.apgd_checkpoints(10) == [3, 5, 6, 7, 8, 9]
    assert iterative.apgd_checkpoints(1) == []


@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.0)])
@pytest.mark.parametrize("steps", [10, 25])
def test_apgd_matches_a_numpy_rerun(mlp, images, norm, eps, steps):
    x, y = images
    got = swtf.attack.apgd(mlp, x, y, eps, norm=norm, steps=steps)
    np.testing.assert_allclose(got, _numpy_apgd(mlp, x, y, eps, steps, norm), atol=1e-5)


def test_apgd_halves_its_step_where_a_constant_step_stalls(mlp, images):
    """At step 2 * eps a constant-step PGD bounces between the ball's faces; APGD, starting with that step,
    halves it, so at equal budget its point has the higher loss far more often than the lower one."""
    x, y = images
    eps = 0.1
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    ours = cross_entropy(y, _logits(mlp, swtf.attack.apgd(mlp, x, y, eps, steps=30, loss="ce"))).numpy()
    bouncing = cross_entropy(y, _logits(mlp, swtf.attack.bim(mlp, x, y, eps, steps=30, step_size=2 * eps))).numpy()
    assert np.sum(ours > bouncing + 1e-6) > 3 * np.sum(ours < bouncing - 1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.0)])
@pytest.mark.parametrize("decay", [0.0, 1.0])
def test_bim_and_mim_match_a_numpy_rerun(mlp, images, norm, eps, decay):
    """Step size eps makes iterates bounce, so the best iterate is often not the last one."""
    x, y = images
    got = swtf.attack.mim(mlp, x, y, eps, norm=norm, steps=8, step_size=eps, decay=decay)
    np.testing.assert_allclose(got, _numpy_attack(mlp, x, y, eps, eps, 8, norm, decay), atol=1e-5)
    if decay == 0.0:
        np.testing.assert_array_equal(got, swtf.attack.bim(mlp, x, y, eps, norm=norm, steps=8, step_size=eps))


@pytest.mark.parametrize("norm", NORMS)
def test_targeted_attack_moves_toward_the_target(mlp, images, norm):
    x, y = images
    target = (_logits(mlp, x).argmax(1) + 1) % 5
    eps = 0.5 if norm == "linf" else 2.0
    x_adv = swtf.attack.pgd(mlp, x, target, eps, norm=norm, targeted=True, steps=20)
    def target_gap(z):
        return np.where(np.eye(5)[target] > 0, -np.inf, z).max(1) - z[np.arange(len(z)), target]
    assert np.all(target_gap(_logits(mlp, x_adv)) < target_gap(_logits(mlp, x)))
    hits = swtf.attack.is_adversarial(mlp, x_adv, target, targeted=True)
    np.testing.assert_array_equal(hits, _logits(mlp, x_adv).argmax(1) == target)
    # No clean point is on its target; the untargeted attack at the same budget reaches fewer targets.
    untargeted = swtf.attack.pgd(mlp, x, _logits(mlp, x).argmax(1), eps, norm=norm, steps=20)
    assert hits.mean() > np.mean(_logits(mlp, untargeted).argmax(1) == target)


@pytest.mark.parametrize("norm", NORMS)
def test_random_start_is_reproducible_and_restarts_only_help(mlp, images, norm):
    x, y = images
    eps = 0.1 if norm == "linf" else 0.4
    # One restart starts at x: no randomness, the BIM trajectory.
    single = swtf.attack.pgd(mlp, x, y, eps, norm=norm, steps=5, seed=7)
    np.testing.assert_array_equal(single, swtf.attack.pgd(mlp, x, y, eps, norm=norm, steps=5, seed=8))
    np.testing.assert_array_equal(single, swtf.attack.bim(mlp, x, y, eps, norm=norm, steps=5))
    # Further restarts start at random points drawn from the seed.
    first = swtf.attack.pgd(mlp, x, y, eps, norm=norm, steps=5, seed=7, restarts=2)
    np.testing.assert_array_equal(first, swtf.attack.pgd(mlp, x, y, eps, norm=norm, steps=5, seed=7, restarts=2))
    assert not np.array_equal(first, swtf.attack.pgd(mlp, x, y, eps, norm=norm, steps=5, seed=8, restarts=2))
    # Restart 0 of a multi-restart run is the single-restart run, so no point's margin can grow.
    more = swtf.attack.pgd(mlp, x, y, eps, norm=norm, steps=5, seed=7, restarts=4)

    def margin(z):
        return z[np.arange(len(z)), y] - np.where(np.eye(5)[y] > 0, -np.inf, z).max(1)

    assert np.all(margin(_logits(mlp, more)) <= margin(_logits(mlp, single)) + 1e-5)


def test_batching_does_not_change_deterministic_attacks(mlp, images):
    x, y = images
    np.testing.assert_array_equal(swtf.attack.bim(mlp, x, y, 0.1, steps=5, batch_size=7),
                                  swtf.attack.bim(mlp, x, y, 0.1, steps=5, batch_size=64))


def test_compiled_once_per_model_and_config(mlp, images):
    x, y = images
    for eps, n in ((0.1, 40), (0.2, 13), (0.0, 1)):
        swtf.attack.pgd(mlp, x[:n], y[:n], eps, steps=3, step_size=0.05, seed=n, batch_size=16)
    compiled = iterative.compiled_attack(mlp, iterative.AttackConfig(steps=3), SHAPE)
    assert compiled.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("schedule", ["constant", "apgd"])
def test_independent_parts_give_the_one_loop_result(mlp, images, schedule):
    """A batch attacked as two loops (how big batches run) equals it attacked as one, random restarts too."""
    x, y = images
    config = iterative.AttackConfig(steps=4, restarts=2, schedule=schedule)
    args = (x[:40], y[:40].astype(np.int32), 0.1, 0.05, tf.constant([3, 0], tf.int64), 2)
    whole, parts = (iterative.compiled_attack(mlp, config, SHAPE, k)(*args) for k in (1, 2))
    for a, b in zip(whole, parts):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_one_point_and_batches_of_every_size(mlp, images):
    x, y = images
    together = swtf.attack.pgd(mlp, x[:40], y[:40], 0.1, steps=3, restarts=2, batch_size=40)
    for n in (1, 2, 33):
        np.testing.assert_array_equal(swtf.attack.pgd(mlp, x[:n], y[:n], 0.1, steps=3, restarts=2, batch_size=40),
                                      together[:n])


@pytest.mark.parametrize("kwargs", [
    dict(eps=-0.1), dict(eps=float("nan")), dict(eps=float("inf")), dict(eps="big"),
    dict(x=np.zeros((3, 16), np.float32)), dict(y=np.eye(5)[[0, 1, 2]]), dict(y=np.array([0, 1, 9])),
    dict(y=np.array([0, 1, 5]), loss="margin"), dict(y=np.array([-1, 1, 2])), dict(y=np.array([0, 2 ** 32, 1])),
    dict(x=np.full((3,) + SHAPE, 2.0, np.float32)), dict(norm="l1"), dict(loss="hinge"), dict(steps=0),
    dict(restarts=0), dict(clip=(1.0, 0.0)), dict(batch_size=0), dict(step_size=-1.0),
])
def test_bad_inputs_raise_one_line_errors(mlp, kwargs):
    args = dict(x=np.zeros((3,) + SHAPE, np.float32), y=np.array([0, 1, 2]), eps=0.1) | kwargs
    with pytest.raises(SwtfError) as err:
        swtf.attack.pgd(mlp, args.pop("x"), args.pop("y"), args.pop("eps"), **args)
    assert "\n" not in str(err.value)


def test_robust_accuracy_rejects_unknown_attack_and_targeted(mlp, images):
    x, y = images
    with pytest.raises(SwtfError, match="unknown attack"):
        swtf.attack.robust_accuracy(mlp, x, y, 0.1, attack="deepfool")
    with pytest.raises(SwtfError, match="targeted"):
        swtf.attack.robust_accuracy(mlp, x, y, 0.1, targeted=True)


# The radii of the study's grids, with clean pixels where x - eps and x + eps land near the box's faces.
EPS_GRID = (1 / 255, 2 / 255, 8 / 255, 0.1, 0.15, 0.3)


def _edge_image(eps):
    """A 4x4 float32 image whose pixels put x - eps a few float32 ulps of 1e-8 above 0 (where float32(eps)
    overshoots eps by up to 6e-9, many ulps there), at and just below 0, and x + eps at and near 1."""
    near = [eps + 1e-9, eps + 3e-8, eps, eps - 1e-9, 2 * eps + 1e-9, 1 - eps - 3e-8, 1 - eps, 1 - eps + 1e-9,
            0.5, 0.0, 1.0, eps + 1e-9, eps + 2e-9, eps + 3e-9, 1 - eps - 1e-9, 0.25]
    return np.array([np.float32(min(max(v, 0), 1)) for v in near], np.float32).reshape(1, 4, 4, 1)


@pytest.mark.parametrize("attack", sorted(swtf.attack.ATTACKS))
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("eps", EPS_GRID)
def test_success_that_needs_the_whole_ball_is_kept(attack, norm, eps):
    """A linear two-class model that an input leaves only if it moves 99.9% of the way to the ball's best
    point: every attack must return a point of the ball (measured in float64) that is misclassified.

    z_0 = 0 and z_1 = w . (x' - x) - 0.999 * gain with label 0, where gain is the largest w . (x' - x) over
    the ball and box: sum_i |w_i| min(eps, room_i) for L-inf (room: distance to the face w_i points at), and
    eps ||w||_2 for L2 (no face is that near). The gradient's direction is w everywhere, so each attack walks
    straight to that point. Before the ball was exact, the repair after the loop replaced such points by x.
    """
    x = _edge_image(eps)
    flat = x.ravel().astype(np.float64)
    w = np.where((flat < 0.5) & (flat > 0), -1.0, 1.0)
    w[flat == 1] = -1.0
    room = np.where(w > 0, 1 - flat, flat)
    gain = np.sum(np.minimum(eps, room)) if norm == "linf" else eps * np.linalg.norm(w)
    model = _linear_model_with_bias(w, bias=-(w @ flat) - 0.999 * gain)
    assert _logits(model, x).argmax(1)[0] == 0
    x_adv = swtf.attack.ATTACKS[attack](model, x, [0], eps, norm=norm)
    assert _lp(x_adv.astype(np.float64) - x, norm)[0] <= eps
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert swtf.attack.is_adversarial(model, x_adv, [0])[0]


def _linear_model_with_bias(w, bias):
    """Two-class linear model z = [0, w . x + bias] on 4x4x1 images."""
    dense = keras.layers.Dense(2, name="logits")
    model = LayerStack([keras.layers.Flatten(), dense], (4, 4, 1))
    dense.set_weights([np.stack([np.zeros_like(w), w], axis=1).astype(np.float32),
                       np.array([0.0, bias], np.float32)])
    return model


@pytest.mark.parametrize("schedule", iterative.SCHEDULES)
@pytest.mark.parametrize("norm", NORMS)
def test_points_the_loop_ranked_successful_are_returned_successful(mlp, norm, schedule):
    """The compiled loop's own success flags (from the logits of the points it keeps) equal a fresh scoring
    of the returned points, on images made of edge pixels over the whole eps grid: nothing between the loop
    and the caller changes a point."""
    rng = np.random.default_rng(5)
    for eps in EPS_GRID:
        x = np.stack([_edge_image(eps).ravel()[rng.permutation(16)].reshape(SHAPE) for _ in range(40)])
        y = rng.integers(0, 5, size=40).astype(np.int32)
        config = iterative.AttackConfig(norm=norm, steps=10, restarts=2, schedule=schedule)
        compiled = iterative.compiled_attack(mlp, config, SHAPE, iterative.independent_parts(len(x)))
        x_best, success, _ = compiled(x, y, eps, 2.5 * eps / 10, tf.constant([0, 0], tf.int64), 0)
        returned = iterative.run_attack(mlp, x, y, eps, 2.5 * eps / 10, config, seed=0)
        np.testing.assert_array_equal(returned, x_best.numpy())
        np.testing.assert_array_equal(swtf.attack.is_adversarial(mlp, returned, y), success.numpy())
        assert np.all(_lp(returned.astype(np.float64) - x, norm) <= eps)
