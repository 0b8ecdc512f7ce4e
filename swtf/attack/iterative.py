"""The compiled engine behind every first-order attack: restarts x steps of projected (momentum) ascent.

One recipe covers FGSM, BIM, PGD and MIM:

    x_0 = x for the first restart; for the others, x or (PGD) a random point of the ball
    g_t = decay * g_{t-1} + grad_x loss(x_t) / ||grad_x loss(x_t)||_1       (decay = 0 except MIM)
    x_{t+1} = Proj_{ball(x, eps) & box}(x_t + step_size * steepest_ascent(g_t))

With decay 0 the L1 normalisation does not change the direction (sign and L2 normalisation are
scale-free), so plain PGD and MIM share one loop. The attack keeps, per example, the strongest of the
points x_0..x_T of all restarts, starts included: a successful point beats an unsuccessful one, then the
lower logit margin wins. The logits that rank x_t are the ones its gradient step computes anyway, so
tracking costs one extra forward pass per restart. Every x_t is projected exactly into the ball
(`lp_balls`), so the point ranked is the point returned, bit for bit: no repair after the loop can turn a
success back into a failure.

PGD's first restart starts at x itself and only the further restarts at random points. At a fixed
budget of steps the start at x was the stronger single start on the digits models measured (1 restart of
20 steps: 5284 against 5235 successes over 48 model/radius/seed cases), and its trajectory is that of
cleverhans' and ART's default PGD (no random start), so the strongest iterate kept here succeeds wherever
their last iterate does. The seed therefore matters only from the second restart on.

APGD (Croce & Hein, 2020, the attack behind AutoAttack) is the same loop with `schedule="apgd"`: the step
size starts at the given value (2 * eps by default) and is halved per example at checkpoints
w_j = ceil(p_j * steps), p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), when the
objective rose on fewer than 75% of the steps since the last checkpoint, or when neither the step size
nor the best objective changed since then; a halved example restarts from its best point so far. Each
step after the first adds momentum: x_{t+1} = P(x_t + 0.75 (z - x_t) + 0.25 (x_t - x_{t-1})), z the plain
PGD step. Same gradient budget per restart as PGD (one gradient per step).

The whole loop runs in one `tf.function` per (model, `AttackConfig`, number of independent parts: two
for batches of 32+ points, else one), cached; batch size, eps, step size and seed are tensor arguments,
so new values never retrace. Each step calls the model's forward and backward pass as a function of its
own (`gradients.logits_and_gradient`, which says why).
"""

import dataclasses
import math
import weakref

import numpy as np
import tensorflow as tf

from swtf.attack import gradients, inputs, lp_balls, objectives


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """The choices that shape the attack's graph (changing one builds a new compiled attack)."""

    norm: str = "linf"
    steps: int = 40
    restarts: int = 1
    random_start: bool = True
    loss: str = "ce"
    targeted: bool = False
    decay: float = 0.0
    clip: tuple = (0.0, 1.0)
    schedule: str = "constant"  # or "apgd": step-size halving and momentum (module docstring)


SCHEDULES = ("constant", "apgd")
APGD_MOMENTUM = 0.75
APGD_RHO = 0.75  # the share of rising steps below which a checkpoint halves the step size

# A batch of at least PART_MIN_ROWS rows per part is attacked as INDEPENDENT_PARTS parts, each by its own
# loop in the one compiled graph. The examples do not interact (each part's random starts are its rows'
# own), so the result is that of one loop; but TF's executor runs the parts' ops side by side on
# different cores, where a small model's ops are too small to keep more than one core busy. Measured on
# 2 cores (batch 256, 40 L-inf steps, 9 alternating rounds): 2 parts ran the digits scnn1 and
# shallow_cnn 1.13-1.16x faster than one loop, the one-layer snn 0.94x, a CIFAR cifar_cnn 1.04x; 3 or 4
# parts were slower than 2 on all of them. Again with the model pass as a function of its own
# (`gradients`; 10-12 rounds): scnn1 1.13x, snn 1.03x. (A part with no rows crashes TF, hence the minimum.)
INDEPENDENT_PARTS = 2
PART_MIN_ROWS = 16


def independent_parts(rows):
    """How many independent loops attack a batch of `rows` rows (see INDEPENDENT_PARTS)."""
    return INDEPENDENT_PARTS if rows >= INDEPENDENT_PARTS * PART_MIN_ROWS else 1


def apgd_checkpoints(steps):
    """Sorted steps 0 < w_1 < w_2 < ... < steps at which APGD may halve its step size (module docstring)."""
    fractions = [0.0, 0.22]
    while fractions[-1] < 1.0:
        fractions.append(fractions[-1] + max(fractions[-1] - fractions[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(p * steps, 9)) for p in fractions[1:]} & set(range(1, steps)))


# model -> {(AttackConfig, example shape, parts): tf.function}. Weak keys, and the functions hold the model
# only weakly, so a model discarded by a search or the pruner frees its compiled attacks too.
_COMPILED = weakref.WeakKeyDictionary()


# model -> {example shape: number of logits}, weak keys as above.
_NUM_LOGITS = weakref.WeakKeyDictionary()


def num_logits(model, example_shape):
    """How many logits `model` gives for one input of `example_shape`. Found by one eager call per model and
    shape, then cached: the call takes milliseconds, a few percent of a 40-step attack on a small batch."""
    per_model = _NUM_LOGITS.setdefault(model, {})
    if example_shape not in per_model:
        per_model[example_shape] = int(model(np.zeros((1,) + example_shape, np.float32), training=False).shape[-1])
    return per_model[example_shape]


def compiled_attack(model, config, example_shape, parts=1):
    """The cached `tf.function(x, y, eps, step_size, seed, skip) -> (x_best, success, margin)` for a batch
    of at least `parts` rows, attacked as `parts` independent loops (see INDEPENDENT_PARTS).

    `skip`: `x` is rows skip.. of the batch the seed belongs to (see `lp_balls.random_start`).
    """
    per_model = _COMPILED.setdefault(model, {})
    key = (config, example_shape, parts)
    if key not in per_model:
        per_model[key] = _build(weakref.ref(model), config, example_shape, parts)
    return per_model[key]


def _build(model_ref, config, example_shape, parts):
    norm, clip, targeted = config.norm, config.clip, config.targeted

    logits_and_gradient = gradients.logits_and_gradient(model_ref, example_shape, config.loss, targeted)

    def per_example(t):
        """A (batch,) tensor shaped to broadcast against the batch of inputs."""
        return tf.reshape(t, [-1] + [1] * len(example_shape))

    def keep_stronger(best, candidate, logits, y):
        best_x, best_success, best_margin = best
        success = objectives.succeeded(logits, y, targeted)
        margin = objectives.margin(logits, y, targeted)
        stronger = (success & ~best_success) | ((success == best_success) & (margin < best_margin))
        return (tf.where(per_example(stronger), candidate, best_x), tf.where(stronger, success, best_success),
                tf.where(stronger, margin, best_margin))

    def constant_restart(x, y, x_t, project, step_size, best):
        velocity = tf.zeros_like(x)
        for t in tf.range(config.steps):
            logits, _, grad = logits_and_gradient(x_t, y)
            best = keep_stronger(best, x_t, logits, y)
            if config.decay:
                velocity = config.decay * velocity + grad / lp_balls.l1_norm(grad)
            else:  # the steepest-ascent direction is scale-free: no normalisation needed
                velocity = grad
            x_t = project(x_t + step_size * lp_balls.steepest_ascent(velocity, norm))
        return x_t, best

    checkpoints = tf.constant([t in apgd_checkpoints(config.steps) for t in range(config.steps)])

    def apgd_restart(x, y, x_t, project, step_size, best):
        batch = tf.shape(x)[0]
        x_prev, x_best, grad_best = x_t, x_t, tf.zeros_like(x)
        eta = eta_then = tf.fill([batch], step_size)
        f_prev = f_best = f_best_then = tf.fill([batch], -np.inf)
        rises, last_check = tf.zeros([batch]), tf.constant(0)
        for t in tf.range(config.steps):
            logits, f, grad = logits_and_gradient(x_t, y)
            best = keep_stronger(best, x_t, logits, y)
            rises += tf.cast((f > f_prev) & (t > 0), tf.float32)
            improved = f > f_best
            x_best = tf.where(per_example(improved), x_t, x_best)
            grad_best = tf.where(per_example(improved), grad, grad_best)
            f_best = tf.maximum(f, f_best)
            f_best_then = tf.where(t == 0, f_best, f_best_then)
            f_prev = f
            if checkpoints[t]:  # halve where progress stalled, and go back to the best point (module docstring)
                stalled = rises < APGD_RHO * tf.cast(t - last_check, tf.float32)
                halve = stalled | ((eta == eta_then) & (f_best == f_best_then))
                eta_then, f_best_then = eta, f_best
                eta = tf.where(halve, eta / 2, eta)
                back = per_example(halve)
                x_t, grad = tf.where(back, x_best, x_t), tf.where(back, grad_best, grad)
                x_prev = tf.where(back, x_best, x_prev)
                f_prev = tf.where(halve, f_best, f_prev)
                rises, last_check = tf.zeros([batch]), t
            z = project(x_t + per_example(eta) * lp_balls.steepest_ascent(grad, norm))
            momentum = tf.where(t > 0, APGD_MOMENTUM, 1.0)
            x_prev, x_t = x_t, project(x_t + momentum * (z - x_t) + (1.0 - momentum) * (x_t - x_prev))
        return x_t, best

    run_restart = apgd_restart if config.schedule == "apgd" else constant_restart

    def restart_from(model, x, y, x_0, project, step_size, best):
        x_t, best = run_restart(x, y, x_0, project, step_size, best)
        return keep_stronger(best, x_t, model(x_t, training=False), y)

    def attack_rows(model, x, y, eps, step_size, seed, skip):
        batch = tf.shape(x)[0]
        project = lp_balls.projection(x, eps, norm, clip)  # exact: the points evaluated are those returned
        best = (x, tf.zeros([batch], tf.bool), tf.fill([batch], np.float32(np.inf)))
        best = restart_from(model, x, y, x, project, step_size, best)  # restart 0 starts at x (module docstring)
        if config.restarts > 1:  # the others at random (with random_start); no loop is built for one restart
            for restart in tf.range(1, config.restarts):
                x_0 = x
                if config.random_start:
                    x_0 = lp_balls.random_start(x, eps, norm, clip, tf.random.experimental.stateless_fold_in(
                        seed, tf.cast(restart, tf.int64)), skip)
                best = restart_from(model, x, y, x_0, project, step_size, best)
        return best

    @tf.function(input_signature=[
        tf.TensorSpec((None,) + example_shape, tf.float32), tf.TensorSpec((None,), tf.int32),
        tf.TensorSpec((), tf.float64), tf.TensorSpec((), tf.float32), tf.TensorSpec((2,), tf.int64),
        tf.TensorSpec((), tf.int32)])
    def attack_batch(x, y, eps, step_size, seed, skip):
        model = model_ref()
        n = tf.shape(x)[0]
        cuts = [n * i // parts for i in range(parts + 1)]
        results = [attack_rows(model, x[begin:end], y[begin:end], eps, step_size, seed, skip + begin)
                   for begin, end in zip(cuts, cuts[1:])]
        return tuple(tf.concat(values, 0) for values in zip(*results))

    return attack_batch


def run_attack(model, x, y, eps, step_size, config, *, seed=0, batch_size=256, first_index=0):
    """Runs the attack described by `config` on NumPy `x`, `y` in batches; returns x_adv (float32).

    Batch `b` draws its random starts from the stateless seed (seed, b), so results are reproducible
    for a given seed and batch size. `first_index`: `x` is the points first_index.. of a larger set;
    batches are then cut where they are in that set and each point gets the random start it gets when
    the whole set is attacked (how a shard reproduces the unsharded attack point for point).
    """
    eps = inputs.check_radius("eps", eps)
    step_size = inputs.check_radius("step_size", step_size)
    inputs.check_choice("norm", config.norm, lp_balls.NORMS)
    inputs.check_choice("loss", config.loss, objectives.LOSSES)
    inputs.check_choice("schedule", config.schedule, SCHEDULES)
    inputs.check_count("steps", config.steps)
    inputs.check_count("restarts", config.restarts)
    batch_size = inputs.check_count("batch_size", batch_size)
    config = dataclasses.replace(config, clip=inputs.check_clip(config.clip))
    x, y = inputs.check_batch(model, x, y, config.clip)
    if not len(x):
        return x
    y = inputs.check_labels(y, num_logits(model, x.shape[1:]))
    first_index = inputs.check_index("first_index", first_index)
    bounds = sorted({0, len(x)} | set(range(-first_index % batch_size, len(x), batch_size)))
    x_adv = []
    for start, stop in zip(bounds, bounds[1:]):
        index = first_index + start
        attack_batch = compiled_attack(model, config, x.shape[1:], independent_parts(stop - start))
        x_adv.append(attack_batch(x[start:stop], y[start:stop], eps, step_size,
                                  tf.constant([seed, index // batch_size], tf.int64),
                                  tf.constant(index % batch_size, tf.int32))[0].numpy())
    return np.concatenate(x_adv)
