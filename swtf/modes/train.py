"""`--mode=train`: trains one architecture of the zoo on the run's data set and saves it into the run.

`--training` picks the loss: standard cross-entropy, PGD adversarial training (Madry et al.), or certified
training (IBP, Gowal et al.; CROWN-IBP, Zhang et al.) at `--train_eps`, with a linear radius ramp over
`--train_eps_ramp_epochs` epochs. Robust training keeps the epoch with the best robust validation accuracy
(PGD accuracy, or certified accuracy by the engine) rather than the best clean one.
"""

import dataclasses
import math

import numpy as np

from swtf import cli_flags  # noqa: F401  (defines the flags this module reads)
from swtf import models, runs, train
from swtf.attack import robust_accuracy
from swtf.distribute import flags as distribute_flags
from swtf.distribute import strategies
from swtf.errors import SwtfError
from swtf.train import certified
from swtf.train.adversarial import PGDTraining


def _standard_loss(opts, steps_per_epoch, seed):
    del opts, steps_per_epoch, seed
    return train.cross_entropy_loss


def _pgd_loss(opts, steps_per_epoch, seed):
    return PGDTraining(eps=opts.eps, steps=opts.pgd_steps, ramp_steps=opts.eps_ramp_epochs * steps_per_epoch,
                       clean_weight=opts.clean_weight, seed=seed)


def _certified_loss(opts, steps_per_epoch, seed):
    del seed
    return certified.ramped_certified_loss(opts.certified_method, opts.eps, opts.kappa_final,
                                           opts.warmup_epochs * steps_per_epoch, opts.eps_ramp_epochs * steps_per_epoch)


# --training value -> builder(options, steps_per_epoch, seed) of the fit loss_fn.
TRAINING_LOSSES = {"standard": _standard_loss, "pgd": _pgd_loss, "certified": _certified_loss}
ADVERSARIAL = ("pgd", "certified")  # the trainings that take --train_eps and its ramp


def robust_monitor(opts, x_val, y_val):
    """The validation score that selects the kept epoch of robust training (None: clean accuracy)."""
    if opts.training == "pgd":
        return "val_pgd_accuracy", lambda model: robust_accuracy(model, x_val, y_val, opts.eps, steps=10, seed=0)
    if opts.training == "certified":
        return certified.certified_monitor(x_val, y_val, opts.eps, method="ibp")
    return None


@dataclasses.dataclass(frozen=True)
class Options:
    model_name: str
    training: str = "standard"
    eps: float = None
    eps_ramp_epochs: int = 0
    pgd_steps: int = 7
    clean_weight: float = 0.0
    certified_method: str = "ibp"
    kappa_final: float = 0.5
    warmup_epochs: int = 0
    strategy: str = "default"


def options_from_flags(fv):
    """Validates the train flags into `Options` (one-line `SwtfError` on a bad value)."""
    from swtf.cli_flags import check_radius

    if not fv.model_name or not fv.model_name.replace("_", "").replace("-", "").isalnum():
        raise SwtfError(f"--model_name must be letters, digits, '_' or '-', got {fv.model_name!r}")
    strategy = distribute_flags.strategy_from_flags(fv)
    if fv.training not in ADVERSARIAL:
        if fv.train_eps is not None:
            raise SwtfError(f"--train_eps applies to adversarial training (--training={'|'.join(ADVERSARIAL)}), "
                            f"not --training={fv.training}")
        return Options(model_name=fv.model_name, training=fv.training, strategy=strategy)
    if fv.train_eps is None or not (math.isfinite(fv.train_eps) and fv.train_eps > 0):
        raise SwtfError(f"--training={fv.training} needs --train_eps > 0 (pixel units, [0, 1]), got {fv.train_eps}")
    check_radius(fv.train_eps, "train_eps")
    if not 0 <= fv.train_eps_ramp_epochs <= fv.epochs:
        raise SwtfError(f"--train_eps_ramp_epochs must be in [0, --epochs={fv.epochs}], got {fv.train_eps_ramp_epochs}")
    if fv.train_pgd_steps < 1:
        raise SwtfError(f"--train_pgd_steps must be >= 1, got {fv.train_pgd_steps}")
    if not 0.0 <= fv.train_clean_weight <= 1.0:
        raise SwtfError(f"--train_clean_weight must be in [0, 1], got {fv.train_clean_weight}")
    if not 0.0 <= fv.certified_kappa_final <= 1.0:
        raise SwtfError(f"--certified_kappa_final must be in [0, 1], got {fv.certified_kappa_final}")
    if not 0 <= fv.certified_warmup_epochs <= fv.epochs:
        raise SwtfError(f"--certified_warmup_epochs must be in [0, --epochs], got {fv.certified_warmup_epochs}")
    certified_only = fv.training == "certified"
    return Options(model_name=fv.model_name, training=fv.training, eps=float(fv.train_eps),
                   eps_ramp_epochs=fv.train_eps_ramp_epochs, pgd_steps=fv.train_pgd_steps,
                   clean_weight=float(fv.train_clean_weight), strategy=strategy,
                   certified_method=fv.certified_method, kappa_final=fv.certified_kappa_final,
                   warmup_epochs=fv.certified_warmup_epochs if certified_only else 0)


def _describe(opts):
    if opts.training not in ADVERSARIAL:
        return opts.training
    if opts.training == "certified":
        return (f"certified ({opts.certified_method}) eps {opts.eps:g} (warm-up {opts.warmup_epochs}, ramp "
                f"{opts.eps_ramp_epochs} epochs, final kappa {opts.kappa_final:g})")
    epochs = f"{opts.eps_ramp_epochs} epoch{'' if opts.eps_ramp_epochs == 1 else 's'}"
    return (f"{opts.training} eps {opts.eps:g} ({opts.pgd_steps} steps, ramp over {epochs}, "
            f"clean weight {opts.clean_weight:g})")


def run(config):
    opts = config.options
    strategy = strategies.make_strategy(opts.strategy)  # first: multi_worker must start before any TF op
    run_dir = strategies.artifacts_dir(strategy, config.run_dir)
    data = config.load_data()
    with strategies.scope(strategy):
        model = models.build(config.model, data.input_shape, data.num_classes, seed=config.seed, **config.hparams)
    name = opts.model_name
    steps_per_epoch = int(np.ceil(len(data.x_train) / config.train.batch_size))
    loss_fn = TRAINING_LOSSES[opts.training](opts, steps_per_epoch, config.seed)
    history = train.fit(model, (data.x_train, data.y_train), (data.x_val, data.y_val), options=config.train,
                        loss_fn=loss_fn, name=name, log_dir=runs.logs_dir(run_dir, name), quiet=config.quiet,
                        strategy=strategy, monitor=robust_monitor(opts, data.x_val, data.y_val),
                        min_epochs=opts.warmup_epochs + opts.eps_ramp_epochs)
    metrics = {"val_accuracy": history.best_val_accuracy, "test_accuracy": train.accuracy(model, data.x_test,
                                                                                          data.y_test),
               "best_epoch": history.best_epoch, "epochs_run": len(history.epochs), "dataset": data.name,
               "seed": config.seed, "training": opts.training}
    if opts.training in ADVERSARIAL:
        metrics["adversarial"] = {"eps": opts.eps, "norm": "linf", "eps_ramp_epochs": opts.eps_ramp_epochs}
        metrics["adversarial"].update(
            {"pgd_steps": opts.pgd_steps, "clean_weight": opts.clean_weight} if opts.training == "pgd" else
            {"method": opts.certified_method, "kappa_final": opts.kappa_final, "warmup_epochs": opts.warmup_epochs})
        metrics["robust_val_score"] = history.best_score
    if strategy is not None:
        metrics["strategy"] = {"name": opts.strategy, "replicas": strategy.num_replicas_in_sync}
    record = runs.save_trained(run_dir, name, model, metrics)
    print(f"train: {name} ({config.model}, {record['params']:,} parameters) on {data.summary()}, "
          f"{_describe(opts)} training: validation accuracy {metrics['val_accuracy']:.4f}, test accuracy "
          f"{metrics['test_accuracy']:.4f} -> {runs.model_path(run_dir, name)}")
