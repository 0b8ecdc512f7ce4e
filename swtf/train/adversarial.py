"""PGD adversarial training (Madry et al., 2018): minimise the loss at the worst point of each input's ball.

    min_theta  E_(x, y) [ (1 - w) * max_{x' in B(x, eps_t) & box} CE(f_theta(x'), y)  +  w * CE(f_theta(x), y) ]

The inner maximum is approximated inside the training step by PGD from a random start, written with tf ops
so it runs in `fit`'s compiled step. It reuses the attack package's ball geometry (`lp_balls`) and
objective gradient (`gradients`, a function of its own, see why there), and keeps the last iterate (Madry
et al.), not the strongest one. The model is called with `training=False` while crafting (dropout and
batch statistics must not change the attack) and `training=True` for the loss. The radius ramps linearly from 0 to `eps` over the first `ramp_steps`
optimizer steps, since the full radius from the first step can keep a fresh network from learning at all.
"""

import dataclasses

import tensorflow as tf

from swtf.attack import gradients, inputs, lp_balls
from swtf.errors import SwtfError
from swtf.train.loop import cross_entropy_loss


def pgd_examples(model, x, y, eps, *, steps, step_size, norm="linf", clip=(0.0, 1.0), seed=(0, 0)):
    """In-graph PGD: `steps` projected ascent steps on the cross-entropy from a random point of the ball.

    Args:
      model: a Keras model producing logits; called with `training=False`.
      x: clean inputs, a float32 tensor inside `clip`.
      y: integer labels, shape (batch,).
      eps: radius (scalar, may be a tensor).
      steps: number of ascent steps (Python int or int tensor).
      step_size: step length (scalar, may be a tensor).
      norm: "linf" or "l2".
      clip: the input box (low, high).
      seed: stateless seed of the random start, shape (2,).

    Returns:
      The last iterate, with gradients stopped: a constant input for the training loss.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    y = tf.cast(y, tf.int32)
    eps = tf.cast(eps, tf.float32)
    step_size = tf.cast(step_size, tf.float32)

    logits_and_gradient = gradients.logits_and_gradient(lambda: model, x.shape[1:], "ce", False)

    project = lp_balls.projection(x, eps, norm, clip)

    def ascent_step(t, x_adv):
        _, _, grad = logits_and_gradient(x_adv, y)
        return t + 1, project(x_adv + step_size * lp_balls.steepest_ascent(grad, norm))

    start = lp_balls.random_start(x, eps, norm, clip, tf.cast(seed, tf.int64))
    _, x_adv = tf.while_loop(lambda t, _: t < steps, ascent_step, (tf.constant(0), start))
    return tf.stop_gradient(x_adv)


@dataclasses.dataclass(frozen=True)
class PGDTraining:
    """The adversarial `loss_fn(model, batch, step)` of `swtf.train.fit`.

    Attributes:
      eps: final radius of the threat ball (pixel units).
      steps: PGD steps per training batch.
      step_size: PGD step length; None gives 2.5 * eps_t / steps (Madry et al.'s rule).
      ramp_steps: optimizer steps over which the radius grows linearly from 0 to `eps` (0: no ramp).
      clean_weight: weight w of the clean cross-entropy; 0 trains on adversarial examples only.
      norm: "linf" or "l2".
      clip: the input box.
      seed: seed of the random starts; batch `step` starts from the stateless seed (seed, step)
        (see `start_seed`).

    Example:
        fit(model, train, val, options=options, loss_fn=PGDTraining(eps=0.1, steps=7, ramp_steps=200))
    """

    eps: float
    steps: int = 7
    step_size: float = None
    ramp_steps: int = 0
    clean_weight: float = 0.0
    norm: str = "linf"
    clip: tuple = (0.0, 1.0)
    seed: int = 0

    def __post_init__(self):
        inputs.check_radius("eps", self.eps)
        inputs.check_count("steps", self.steps)
        if self.step_size is not None:
            inputs.check_radius("step_size", self.step_size)
        if isinstance(self.ramp_steps, bool) or not isinstance(self.ramp_steps, int) or self.ramp_steps < 0:
            raise SwtfError(f"ramp_steps must be an integer >= 0, got {self.ramp_steps!r}")
        if not 0.0 <= self.clean_weight <= 1.0:
            raise SwtfError(f"clean_weight must be in [0, 1], got {self.clean_weight}")
        inputs.check_choice("norm", self.norm, lp_balls.NORMS)
        object.__setattr__(self, "clip", inputs.check_clip(self.clip))

    def epsilon(self, step):
        """The radius at optimizer step `step`: eps * min(1, step / ramp_steps)."""
        if self.ramp_steps == 0:
            return tf.constant(self.eps, tf.float32)
        progress = tf.cast(step, tf.float32) / float(self.ramp_steps)
        return self.eps * tf.minimum(1.0, progress)

    def start_seed(self, step):
        """The stateless seed of the random starts at optimizer step `step`: (seed, step), with the replica
        id folded in under a multi-replica `tf.distribute` strategy, so replicas draw different starts."""
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(step, tf.int64)])
        replica = tf.distribute.get_replica_context()
        if replica is None or replica.num_replicas_in_sync == 1:
            return seed
        return tf.random.experimental.stateless_fold_in(seed, replica.replica_id_in_sync_group)

    def __call__(self, model, batch, step):
        x, y = tf.convert_to_tensor(batch[0], tf.float32), batch[1]
        eps = self.epsilon(step)
        step_size = 2.5 * eps / self.steps if self.step_size is None else self.step_size
        x_adv = pgd_examples(model, x, y, eps, steps=self.steps, step_size=step_size, norm=self.norm,
                             clip=self.clip, seed=self.start_seed(step))
        loss = cross_entropy_loss(model, (x_adv, y), step)
        if self.clean_weight > 0:
            loss = (1.0 - self.clean_weight) * loss + self.clean_weight * cross_entropy_loss(model, (x, y), step)
        return loss
