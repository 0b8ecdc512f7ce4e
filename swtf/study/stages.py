"""The study's stages: teacher, students, pruning, attacks, certification; each reads and writes artifacts.

Artifacts (under the run directory):
    models/<name>.keras|json          every trained model, its record carrying role, teacher and metrics
    study/students.json               one row per distilled student (every temperature), with "selected"
    study/prune.json                  the pruning steps of the best student of each teacher
    study/attack.json|csv             accuracy under PGD and APGD over the eps grid, per model and attack seed;
                                      its "curves" are per point the strongest of the two (robust only if both
                                      missed), "by_attack" each attack's accuracies
    study/certify.json                certified radii per model on the same test points
    study/seeds.json                  the training seeds of the last study and the suffix of each one's names

With several training seeds (`--study_seeds`) every stage runs once per seed: the first seed's stages, models
and artifacts keep the names above, a further seed s's carry the suffix "-seed<s>" (`teacher-seed1`,
`study/certify-seed1.json`, ...). All seeds' models are attacked and certified on the same test points.
"""

import dataclasses
import os
import re

import numpy as np

from swtf import io, models, progress, runs, train
from swtf.distill import study as distill_study
from swtf.distill import sweep, trainer
from swtf.errors import SwtfError



def artifact_path(config, name, suffix=""):
    """`<run_dir>/study/<name>`, with a training seed's `suffix` before the extension."""
    stem, extension = os.path.splitext(name)
    return os.path.join(config.run_dir, "study", stem + suffix + extension)


# --- training seeds ------------------------------------------------------------------------------------

def seed_suffix(seed, training_seeds):
    """What the names of training seed `seed`'s stages, models and artifacts end with: nothing for the first
    seed (so a one-seed study is named and cached as before seeds existed), "-seed<s>" for the others."""
    return "" if seed == training_seeds[0] else f"-seed{seed}"


def seeded_config(config, seed):
    """The study's config for training seed `seed`: model initialisation and shuffling use it (`seed`,
    `train.seed`); the data split stays that of the run's --seed (the data are loaded once), recorded as
    `options.split_seed` where the two differ."""
    opts = config.options
    options = dataclasses.replace(opts, seed_suffix=seed_suffix(seed, opts.training_seeds),
                                  split_seed=None if seed == config.seed else config.seed)
    return dataclasses.replace(config, seed=seed, train=dataclasses.replace(config.train, seed=seed), options=options)


def named(config, name):
    """The name of this training seed's model, stage artifact or run-wide name `name`."""
    return name + config.options.seed_suffix


def _seed_settings(config):
    split = getattr(config.options, "split_seed", None)
    return {} if split is None else {"split_seed": split}


def write_seeds(config):
    """Records the training seeds of the study just run, for the report (`read_seeds`)."""
    seeds = config.options.training_seeds
    io.write_json(artifact_path(config, "seeds.json"),
                  {"training_seeds": list(seeds), "suffixes": {str(s): seed_suffix(s, seeds) for s in seeds}})


def read_seeds(config):
    """[(training seed, suffix)] of the run's last study; [(None, "")] for a run without `study/seeds.json`
    (one seed, the names without suffix)."""
    path = artifact_path(config, "seeds.json")
    if not os.path.isfile(path):
        return [(None, "")]
    found = io.read_json(path)
    return [(int(s), found["suffixes"][str(s)]) for s in found["training_seeds"]]


def model_slug(text):
    """A file-safe model name from a student label such as "shallow_cnn:filters=8"."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


# --- teacher -------------------------------------------------------------------------------------------

def teacher_settings(config):
    return {"dataset": config.dataset, "data": [config.val_fraction, config.train_limit, config.test_limit],
            "seed": config.seed, "model": config.model, "hparams": config.hparams,
            "train": dataclasses.asdict(config.train), **_seed_settings(config)}


def run_teacher(context):
    config, data = context.config, context.data

    def train_teacher():
        model = models.build(config.model, data.input_shape, data.num_classes, seed=config.seed, **config.hparams)
        history = train.fit(model, (data.x_train, data.y_train), (data.x_val, data.y_val), options=config.train,
                            name=name, log_dir=runs.logs_dir(config.run_dir, name), quiet=config.quiet)
        return model, {"role": "teacher", "training": "standard", "val_accuracy": history.best_val_accuracy,
                       "test_accuracy": train.accuracy(model, data.x_test, data.y_test),
                       "best_epoch": history.best_epoch, **_seed_record(config)}

    name = named(config, "teacher")
    _, record = context.model(name, train_teacher)
    return (f"{name} {record['architecture']} ({record['params']:,} parameters): test accuracy "
            f"{record['metrics']['test_accuracy']:.4f}")


# --- students ------------------------------------------------------------------------------------------

def students_settings(config):
    opts = config.options
    return {"students": opts.students, "temperatures": list(opts.temperatures), "alpha": opts.alpha,
            "train": dataclasses.asdict(config.train)}


def run_students(context):
    """Distils every student from the teacher by matching logits and by soft targets over temperatures."""
    config, data = context.config, context.data
    teacher, _ = runs.load_trained(config.run_dir, named(config, "teacher"))
    targets = trainer.teacher_targets(teacher, data)
    rows = []
    for architecture, hparams in sweep.parse_sweep(config.options.students):
        label = sweep.student_label(architecture, hparams)
        for method, temperatures in (("logits", (None,)), ("soft_targets", config.options.temperatures)):
            for temperature in temperatures:
                name = named(config, f"student-{model_slug(label)}-{method}"
                                     + (f"-t{temperature:g}" if temperature else ""))
                spec = trainer.DistillSpec(method=method, temperature=temperature or 1.0, alpha=config.options.alpha)

                def train_student(architecture=architecture, hparams=hparams, spec=spec, name=name):
                    student = distill_study.build_student(architecture, hparams, data, config.seed)
                    metrics = trainer.distill(student, data, targets, spec, config.train, name=name,
                                              log_dir=runs.logs_dir(config.run_dir, name), quiet=config.quiet)
                    return student, {"role": "student", "teacher": named(config, "teacher"), "student": label,
                                     "method": method, "seed": config.seed, "temperature": temperature, **metrics}

                _, record = context.model(name, train_student)
                metrics = {k: v for k, v in record["metrics"].items() if k != "stage_key"}  # cache key, not a result
                rows.append({"name": name, "params": record["params"], "architecture": architecture, **metrics})
    rows = distill_study.mark_selected(rows)
    io.write_json(artifact_path(config, "students.json", config.options.seed_suffix), rows)
    best = max((r for r in rows if r["selected"]), key=lambda r: r["val_accuracy"])
    return (f"{len(rows)} students trained; best on validation {best['name']} "
            f"({best['params']:,} parameters, test accuracy {best['test_accuracy']:.4f})")


def selected_students(config):
    """The students the study compares: per student and method, the validation-selected temperature."""
    rows = io.read_json(artifact_path(config, "students.json", config.options.seed_suffix))
    return [r for r in rows if r["selected"]]


def study_models(config):
    """Names of the models the study compares (of the config's training seed), teacher first, then the robust
    teacher's family."""
    suffix = config.options.seed_suffix
    names = [named(config, "teacher")] + [r["name"] for r in selected_students(config)]
    prune_file = artifact_path(config, "prune.json", suffix)
    if os.path.isfile(prune_file):
        names.append(io.read_json(prune_file)["pruned_model"])
    robust_file = artifact_path(config, "robust_students.json", suffix)
    if os.path.isfile(robust_file):
        names += [named(config, "robust_teacher")] + io.read_json(robust_file)["models"]
    return names


def _seed_record(config):
    """What a trained model's record says about its training seed (nothing for the first seed's, whose records
    stay as before training seeds existed)."""
    return {"training_seed": config.seed} if config.options.seed_suffix else {}


def check_option(condition, message):
    if not condition:
        raise SwtfError(message)


def to_float_list(values):
    return [float(v) for v in np.ravel(values)]


# --- robust teacher and its students ---------------------------------------------------------------

def robust_spec(config):
    """Certified training (IBP) at the study's eps, scored with IBP on the study's points (cheap)."""
    from swtf.distill import robust

    opts = config.options
    return robust.RobustSpec(eps=opts.eps, method=opts.robust_method, warmup_epochs=opts.robust_warmup_epochs,
                             ramp_epochs=opts.robust_ramp_epochs, points=opts.num_points, certify_method="ibp")


def robust_teacher_settings(config):
    return {**teacher_settings(config), "model": config.options.robust_model,
            "hparams": config.options.robust_hparams, "robust": dataclasses.asdict(robust_spec(config))}


def run_robust_teacher(context):
    """The teacher's architecture trained from scratch with the certified loss (the robust teacher)."""
    from swtf.distill import robust

    config, data = context.config, context.data
    name = named(config, "robust_teacher")

    def train_robust_teacher():
        model = models.build(config.options.robust_model, data.input_shape, data.num_classes, seed=config.seed,
                             **config.options.robust_hparams)
        metrics = robust.certified_fit(model, data, robust_spec(config), config.train, name=name,
                                       log_dir=runs.logs_dir(config.run_dir, name), quiet=config.quiet)
        return model, {"role": "robust_teacher", "training": "certified", **metrics, **_seed_record(config)}

    _, record = context.model(name, train_robust_teacher)
    m = record["metrics"]
    return (f"{name} {record['architecture']} ({m['method']} training at eps {m['eps']:g}): test accuracy "
            f"{m['test_accuracy']:.4f}, IBP-certified {m['certified_accuracy']:.3f} on {m['certified_points']} points")


def robust_students_settings(config):
    return {"robust": dataclasses.asdict(robust_spec(config)), "alpha": config.options.alpha,
            "train": dataclasses.asdict(config.train)}


def best_student(config, families, missing):
    """The selected student of an architecture in `families` with the best validation accuracy (the fewest
    parameters on a tie); `missing`: the error if there is none."""
    best = max((r for r in selected_students(config) if r["architecture"] in families),
               key=lambda r: (r["val_accuracy"], -r["params"]), default=None)
    check_option(best, missing)
    return best


def run_robust_students(context):
    """The study's four-way comparison for the robust teacher, on the validation-best student
    architecture: distilled from the robust teacher (at the temperature selected for the standard
    teacher), that student re-trained with the certified loss, and the straight robust student."""
    from swtf.distill import robust

    config, data = context.config, context.data
    best = best_student(config, models.ARCHITECTURES, "the robust comparison needs a student in --study_students")
    record = runs.read_record(config.run_dir, best["name"])
    architecture, hparams = record["architecture"], record["hparams"]
    teacher, _ = runs.load_trained(config.run_dir, named(config, "robust_teacher"))
    targets = trainer.teacher_targets(teacher, data)
    spec = trainer.DistillSpec(method=best["method"], temperature=best["temperature"] or 1.0,
                               alpha=config.options.alpha)
    slug = model_slug(best["student"]) + config.options.seed_suffix
    common = {"teacher": named(config, "robust_teacher"), "student": best["student"], "seed": config.seed}

    def distilled():
        student = distill_study.build_student(architecture, hparams, data, config.seed)
        metrics = trainer.distill(student, data, targets, spec, config.train, name=f"robust-distilled-{slug}",
                                  quiet=config.quiet)
        return student, {"role": "student", "method": best["method"], "temperature": best["temperature"],
                         **common, **metrics}

    student, _ = context.model(f"robust-distilled-{slug}", distilled)

    def retrained():
        model, metrics = robust.retrained_student(student, data, robust_spec(config), config.train,
                                                  name=f"robust-retrained-{slug}", quiet=config.quiet)
        return model, {"role": "retrained_student", **common, **metrics}

    def straight():
        model, metrics = robust.straight_student(architecture, hparams, data, robust_spec(config), config.train,
                                                 name=f"robust-straight-{slug}", quiet=config.quiet)
        return model, {"role": "straight_student", **common, **metrics}

    names = [f"robust-distilled-{slug}"]
    for name, train_fn in ((f"robust-retrained-{slug}", retrained), (f"robust-straight-{slug}", straight)):
        context.model(name, train_fn)
        names.append(name)
    io.write_json(artifact_path(config, "robust_students.json", config.options.seed_suffix),
                  {"student": best["student"], "models": names})
    return f"robust teacher's students of {best['student']}: distilled, re-trained and straight"


# --- pruning -------------------------------------------------------------------------------------------

# Architectures with convolutions, whose filters structural pruning removes.
CONV_FAMILIES = tuple(name for name in models.ARCHITECTURES if name != "snn")


def prune_settings(config):
    opts = config.options
    return {"fraction": opts.prune_fraction, "steps": opts.prune_steps, "train": dataclasses.asdict(config.train)}


def run_prune(context):
    """Prunes the validation-best conv student on a tfmot schedule, fine-tuning by distillation."""
    from swtf import prune

    config, data = context.config, context.data
    best = best_student(config, CONV_FAMILIES,
                        "the study prunes a conv student: add shallow_cnn, scnn1 or scnn2 to --study_students")
    student, _ = runs.load_trained(config.run_dir, best["name"])
    teacher, _ = runs.load_trained(config.run_dir, named(config, "teacher"))
    schedule = prune.polynomial(config.options.prune_fraction, config.options.prune_steps)
    steps = prune.prune_iteratively(student, data, schedule, prune.layer_fraction, steps=config.options.prune_steps,
                                    train_options=config.train, teacher_logits=train.predict_logits(teacher,
                                                                                                    data.x_train),
                                    quiet=config.quiet, name=f"prune {best['name']}")
    final = steps[-1]
    name = f"pruned-{best['name']}"
    context.save(name, final.model, {
        "role": "pruned", "teacher": named(config, "teacher"), "student": best["name"],
        "val_accuracy": final.val_accuracy,
        "test_accuracy": final.test_accuracy, "sparsity": final.sparsity, "flops": final.flops})
    io.write_json(artifact_path(config, "prune.json", config.options.seed_suffix),
                  {"student": best["name"], "pruned_model": name, "steps": [s.as_row() for s in steps]})
    return (f"pruned {best['name']}: {steps[0].params:,} -> {final.params:,} parameters, test accuracy "
            f"{steps[0].test_accuracy:.4f} -> {final.test_accuracy:.4f}")


# --- attacks -------------------------------------------------------------------------------------------

def attack_settings(config):
    opts = config.options
    settings = {"eps_grid": list(opts.eps_grid), "points": opts.num_points, "steps": opts.attack_steps,
                "restarts": opts.attack_restarts, "seeds": list(opts.attack_seeds)}
    return {**settings, "apgd_steps": opts.apgd_steps} if opts.apgd_steps else settings


def study_attacks(opts):
    """The study's attacks as [{"attack", "steps", "restarts"}]: PGD, then APGD unless its steps are 0."""
    found = [{"attack": "pgd", "steps": opts.attack_steps, "restarts": opts.attack_restarts}]
    if opts.apgd_steps:
        found.append({"attack": "apgd", "steps": opts.apgd_steps, "restarts": opts.attack_restarts})
    return found


def strongest(curves_by_attack):
    """Per model the curve of the strongest of the attacks, point by point: correct at (eps, seed) only where
    every attack run with that seed missed it; `{attack: {model: curve}}` on the same points, eps and seeds."""
    from swtf.attack import curves as attack_curves

    attacks = list(curves_by_attack)
    first = curves_by_attack[attacks[0]]
    found = {}
    for name, curve in first.items():
        correct = np.logical_and.reduce([np.asarray(curves_by_attack[a][name]["correct"], bool) for a in attacks])
        found[name] = attack_curves.curve_from_outcomes(
            {"eps": curve["eps"], "seeds": curve["seeds"], "correct": correct.tolist()},
            attack="+".join(attacks), backend="swtf",
            settings={a: curves_by_attack[a][name]["settings"] for a in attacks})
    return found


def evaluation_points(config, data):
    """The test points every attack and certificate is computed on: the first `num_points`, for every model."""
    n = min(config.options.num_points, len(data.x_test))
    return data.x_test[:n], data.y_test[:n]


def run_attack(context):
    """Accuracy under PGD and APGD (with restarts) for every model of the study over the eps grid, once per
    attack seed; the curves the verdict reads are per point the strongest of the two."""
    from swtf.attack import curves as attack_curves

    config, data = context.config, context.data
    x, y = evaluation_points(config, data)
    opts = config.options
    trained = {name: runs.load_trained(config.run_dir, name)[0] for name in study_models(config)}
    attacks = study_attacks(opts)
    by_attack = {}
    with progress.Progress("attack", len(trained) * len(opts.eps_grid) * len(attacks), unit="radius",
                           quiet=config.quiet) as bar:
        for spec in attacks:
            by_attack[spec["attack"]] = attack_curves.robustness_curves(
                trained, x, y, opts.eps_grid, attack=spec["attack"], seeds=opts.attack_seeds, steps=spec["steps"],
                restarts=spec["restarts"],
                progress=lambda name, eps, accuracy, a=spec["attack"]: bar.step(
                    f"{a} {name} eps {eps:g}", f"accuracy {accuracy:.3f}"))
    curves = strongest(by_attack)
    lean = {attack: {name: {k: v for k, v in curve.items() if k != "correct"} for name, curve in found.items()}
            for attack, found in by_attack.items()}  # the per-point outcomes are kept once, in "curves"
    attack_curves.write_curves(artifact_path(config, "attack", opts.seed_suffix), curves,
                               attack="+".join(by_attack), norm="linf", steps=opts.attack_steps,
                               restarts=opts.attack_restarts, attacks=attacks, by_attack=lean)
    at_eps = {name: float(np.mean(c["accuracy"][list(c["eps"]).index(opts.eps)])) for name, c in curves.items()}
    names = " and ".join(f"{a['attack'].upper()}-{a['steps']}" for a in attacks)
    return f"{names} ({opts.attack_restarts} restarts) on {len(y)} points, {len(curves)} models; " \
           f"accuracy at eps {opts.eps:g} under the strongest: " + ", ".join(f"{n} {a:.3f}" for n, a in at_eps.items())


# --- certification -------------------------------------------------------------------------------------

def certify_settings(config):
    opts = config.options
    return {"points": opts.num_points, "eps": opts.eps, "methods": list(opts.certify_methods),
            "max_radius": opts.max_radius}


def run_certify(context):
    """Certified radii of every certifiable model of the study on the same test points, per method."""
    from swtf import certify

    config, data = context.config, context.data
    x, y = evaluation_points(config, data)
    opts = config.options
    results, refused, correct = {}, {}, {}
    names = study_models(config)
    with progress.Progress("certify", len(names), unit="model", quiet=config.quiet) as bar:
        for name in names:
            model, _ = runs.load_trained(config.run_dir, name)
            try:
                certify.as_network(model)
            except SwtfError as err:
                refused[name] = str(err)
                bar.step(name, "not certifiable")
                continue
            correct[name] = [bool(c) for c in np.argmax(train.predict_logits(model, x), axis=1) == y]
            results[name] = {}
            for method in opts.certify_methods:
                radii = certify.certified_radius(model, x, y, method=method, max_radius=opts.max_radius)
                results[name][method] = to_float_list(radii)
            bar.step(name, ", ".join(f"{method} certified accuracy {np.mean(np.asarray(radii) >= opts.eps):.3f}"
                                     for method, radii in results[name].items()))
    io.write_json(artifact_path(config, "certify.json", opts.seed_suffix),
                  {"points": len(y), "eps": opts.eps, "labels": y, "methods": list(opts.certify_methods),
                   "radii": results, "correct": correct, "not_certifiable": refused})
    method = opts.certify_methods[0]
    return f"{method} radii on {len(y)} points for {len(results)} models; " + ", ".join(
        f"{n}: certified accuracy {np.mean(np.asarray(r[method]) >= opts.eps):.3f}" for n, r in results.items())
