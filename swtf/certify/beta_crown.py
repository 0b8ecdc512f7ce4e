"""beta-CROWN: lower bounds over ReLU-split subdomains, with optimised slopes alpha and multipliers beta.

A subdomain of the input set fixes the sign of some ReLU inputs z_i: s_i z_i >= 0, with s_i = +1 (an
active split) or -1 (an inactive split). On the subdomain

  * the split ReLU is linear: its input bounds are clamped to [max(l, 0), u] (active) or [l, min(u, 0)]
    (inactive), so its relaxation is exact (relu(z) = z, resp. 0);
  * for every beta_i >= 0:   <c, f(x)>  >=  <c, f(x)> - sum_i beta_i s_i z_i(x),   as each s_i z_i(x) >= 0.

The backward pass (`backward_crown`, node term -beta_i s_i on the split ReLU's input node) bounds the right
side from below over the whole input set, a superset of the subdomain. So every beta >= 0 and every lower
slope alpha in [0, 1] of the unsplit unstable ReLUs gives a sound bound over the subdomain (Wang et al.,
"Beta-CROWN", NeurIPS 2021, Theorem 3.1 with fixed intermediate bounds). Clamping alone ignores where the
constraint s_i z_i >= 0 cuts the input set; optimal betas account for it (their Theorem 3.2: the optimum
is the LP over the subdomain's relaxation).

Intermediate bounds are the root's (`bab.root_bounds`: full alpha-CROWN's over the whole input set,
intersected with IBP's), clamped at the splits: bounds over the input set hold on every subdomain. This is
beta-CROWN with fixed intermediate bounds: one backward pass per subdomain and Adam step.

Alphas and betas are per subdomain, spec row and neuron, optimised by projected Adam (`projected_adam`);
a child starts from its parent's values, its new split's beta from 0.

Besides the bounds, one pass gives (from the same gradients) what branch and bound needs next:
  scores   per unstable neuron, -(d bound / d upper intercept) * upper intercept, the part of the bound
           its upper line's intercept costs; a split makes the neuron exact in both children, removing
           it (BaBSR's intercept score, Bunel et al., JMLR 2020);
  points   the corner of the input box where each subdomain's bound is attained (x_j = lower_j where the
           final coefficient a_j on x_j is positive, else upper_j): candidate counterexamples; a is the
           bound's gradient to the box (d/dl = max(a, 0), d/du = min(a, 0), so a = d/dl + d/du).
"""

import collections
import functools
import weakref

import tensorflow as tf

from swtf.certify import projected_adam
from swtf.certify.nonlinear_ops import NONLINEAR_RULES
from swtf.certify.perturbation import LinfBox
from swtf.certify.relu_relaxation import relu_relaxation

STEPS = 10
ALPHA_LEARNING_RATE = 0.1
BETA_LEARNING_RATE = 0.05
LR_DECAY = 0.98

DomainBounds = collections.namedtuple("DomainBounds", "lower alphas betas scores points coefficients")
DomainBounds.__doc__ = """Per subdomain: (D, S) lower bounds; {relu id: (D, S, *shape)} alphas and betas;
{relu id: (D, *shape)} branching scores (0 where a neuron is stable or split); (D, *input shape) points and
the bound's coefficients on the input (summed over rows)."""

_STEPS = weakref.WeakKeyDictionary()  # Verifier -> its compiled bound-and-gradients step


def relu_inputs(verifier):
    """{relu node id: its input node id}."""
    return {r: verifier.nodes[r].inputs[0] for r in verifier.nonlinear_ids if verifier.nodes[r].op == "relu"}


def clamped_bounds(verifier, bounds, signs):
    """`bounds` {input id: (lower, upper)} with every split ReLU input clamped to its side of 0, and the bounds
    of an input that is itself a ReLU's output (max pooling after a ReLU) re-derived from the clamped ones:
    the ReLU's interval image, as `Verifier.intermediate_bounds` derives them."""
    clamped = dict(bounds)
    for r, k in relu_inputs(verifier).items():
        lower, upper = bounds[k]
        sign = tf.cast(signs[r], lower.dtype)
        clamped[k] = (tf.where(sign > 0, tf.maximum(lower, 0), lower), tf.where(sign < 0, tf.minimum(upper, 0), upper))
    for k in bounds:
        source = verifier.nodes[k]
        if source.op == "relu":
            image = NONLINEAR_RULES["relu"].interval(source.params, *clamped[source.inputs[0]])
            clamped[k] = (tf.maximum(bounds[k][0], image[0]), tf.minimum(bounds[k][1], image[1]))
    return clamped


def _bound_and_gradients(backward, relu_input_ids, spec, inputs, relaxations, alphas, betas, signs):
    """The (D, S) bounds and the gradients of their sum to alphas, betas, upper intercepts and the box."""
    intercepts = {r: relaxations[r].upper_intercept for r in relu_input_ids}
    with tf.GradientTape() as tape:
        tape.watch([alphas, betas, intercepts, inputs.lower, inputs.upper])
        terms = {k: -betas[r] * tf.expand_dims(signs[r], 1) for r, k in relu_input_ids.items()}
        lower = backward(spec, inputs, relaxations, alphas, terms)
        objective = tf.reduce_sum(lower)
    return lower, tape.gradient(objective, {"alpha": alphas, "beta": betas, "intercept": intercepts,
                                            "box": (inputs.lower, inputs.upper)})


def _step(verifier):
    if verifier not in _STEPS:
        backward = verifier._backward_from(verifier.network.output_id)
        _STEPS[verifier] = tf.function(functools.partial(_bound_and_gradients, backward, relu_inputs(verifier)),
                                       autograph=False, reduce_retracing=True)
    return _STEPS[verifier]


def bound_domains(verifier, inputs, bounds, spec, signs, alphas, betas, steps=STEPS):
    """`DomainBounds` of D subdomains of a box.

    Args:
      verifier: the network's `Verifier`.
      inputs: `LinfBox` of the D subdomains' boxes (D, *input shape).
      bounds: {nonlinear input id: (lower, upper)}, (D, *shape): sound over each box (not yet clamped).
      spec: (D, S, *output shape) rows to bound.
      signs: {relu id: (D, *shape)} split signs, +1, -1 or 0 (not split).
      alphas, betas: {relu id: (D, S, *shape)} starting values (see the module docstring).
      steps: Adam steps after the first evaluation.
    """
    dtype = verifier.dtype
    signs = {r: tf.cast(s, dtype) for r, s in signs.items()}
    clamped = clamped_bounds(verifier, bounds, signs)
    relaxations = {r: verifier.relax(r, clamped) for r in verifier.nonlinear_ids}
    step = _step(verifier)
    last = {}

    def evaluate(params):
        lower, grads = step(spec, inputs, relaxations, params["alpha"], params["beta"], signs)
        last.update(grads)
        return lower, grads

    groups = {"alpha": ({r: tf.cast(a, dtype) for r, a in alphas.items()}, 0.0, 1.0, ALPHA_LEARNING_RATE),
              "beta": ({r: tf.cast(b, dtype) for r, b in betas.items()}, 0.0, float("inf"), BETA_LEARNING_RATE)}
    lower, params = projected_adam.maximize(evaluate, groups, steps, LR_DECAY)
    scores = {r: -last["intercept"][r] * relaxations[r].upper_intercept for r in relu_inputs(verifier)}
    grad_lower, grad_upper = last["box"]
    coefficients = grad_lower + grad_upper
    points = tf.where(coefficients >= 0, inputs.lower, inputs.upper)
    return DomainBounds(lower, params["alpha"], params["beta"], scores, points, coefficients)


def initial_parameters(verifier, bounds, num_domains, num_specs):
    """Root alphas (CROWN's adaptive lower slopes) and zero betas, {relu id: (D, S, *shape)}."""
    alphas, betas = {}, {}
    for r, k in relu_inputs(verifier).items():
        slope = relu_relaxation(*bounds[k]).lower_slope
        alphas[r] = tf.broadcast_to(slope[:, None], (num_domains, num_specs) + tuple(slope.shape[1:]))
        betas[r] = tf.zeros_like(alphas[r])
    return alphas, betas


def box_of(lower, upper, dtype):
    """A `LinfBox` of NumPy bounds."""
    return LinfBox(tf.constant(lower, dtype), tf.constant(upper, dtype))
