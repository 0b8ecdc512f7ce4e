"""Every command-line flag of swtf, defined without importing TensorFlow.

`swtf.main` parses and checks the command line against these definitions before it loads TensorFlow (several
seconds), so a mistyped flag, a bad value or a malformed flagfile is reported at once. The modes read the
values (`flags.FLAGS.<name>`) and validate what depends on several flags into their `Options`.

The choice lists below are those of the library modules named beside them (which import TensorFlow);
tests/cli_flags_test.py checks that the two agree.
"""

import json
import math
import os

from absl import flags

from swtf.errors import SwtfError

MODES = ("study", "train", "distill", "prune", "attack", "certify", "search", "report", "export", "verify")
DATASETS = ("mnist", "fashion_mnist", "cifar10", "svhn")  # swtf.data.TFDS_NAMES
ARCHITECTURES = ("cifar_cnn", "svhn_cnn", "digits_cnn", "convex_cnn", "shallow_cnn", "snn", "scnn1",
                 "scnn2")  # swtf.models
LR_SCHEDULES = ("cosine", "constant")  # swtf.train.loop
ENGINES = ("inprocess", "ray")  # swtf.distribute.flags
STRATEGIES = ("default", "mirrored", "multi_worker")  # swtf.distribute.flags
TRAINING_LOSSES = ("standard", "pgd", "certified")  # swtf.modes.train
CERTIFIED_TRAINING_METHODS = ("ibp", "crown-ibp")  # swtf.train.certified
DISTILL_METHODS = ("labels", "logits", "soft_targets", "hinton")  # swtf.distill.trainer
DISTILL_TARGETS = ("static", "online")  # swtf.distill.trainer
TUNERS = ("bayesian", "hyperband")  # swtf.search.tuning
SEARCH_FAMILIES = ("snn", "scnn1", "scnn2", "shallow_cnn")  # swtf.search.space.FAMILY_SPACES
PRUNE_POLICIES = ("layer", "global", "threshold")  # swtf.modes.prune
PRUNE_SCHEDULES = ("oneshot", "polynomial", "constant")  # swtf.modes.prune
FINETUNING = ("distill", "labels", "none")  # swtf.modes.prune
PRUNE_DISTILL_LOSSES = ("hinton", "logits")  # swtf.prune.schedule
ATTACKS = ("fgsm", "bim", "pgd", "mim", "apgd")  # swtf.attack.ATTACKS
NORMS = ("linf", "l2")  # swtf.attack.lp_balls, swtf.certify.api
ATTACK_BACKENDS = ("swtf", "cleverhans")  # swtf.attack.curves
ATTACK_BANDS = ("minmax", "std")  # swtf.attack.plots
CERTIFY_METHODS = ("ibp", "crown", "crown-ibp", "alpha-crown", "alpha-crown-fixed")  # swtf.certify.METHODS
PGD_RESTARTS = 2  # swtf.modes.attack: a start at x and one random start per seed
ATTACK_BATCH_SIZE = 256  # swtf.modes.attack.DEFAULT_BATCH_SIZE


# Every mode: data, run directory, model and training

flags.DEFINE_enum("mode", "study", MODES, "What to run.")
flags.DEFINE_string("dataset", "digits",
                    f"Data set: digits (embedded), {', '.join(DATASETS)}, or npz:PATH.")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data folder, or a folder of <dataset>.npz copies.")
flags.DEFINE_string("run_dir", None, "Run directory for every artifact (default: runs/<dataset>).")
flags.DEFINE_integer("seed", 0, "Seed of every random choice (splits, initial weights, shuffling, attacks).")
flags.DEFINE_bool("quiet", False, "Silence progress bars; keep the one-line summaries.")
flags.DEFINE_float("val_fraction", 0.1, "Share of the training set held out for validation.")
flags.DEFINE_integer("train_limit", None, "Use at most this many training examples (stratified subset).")
flags.DEFINE_integer("test_limit", None, "Use the first this many test examples.")
flags.DEFINE_string("model", "digits_cnn", f"Architecture to train: {', '.join(sorted(ARCHITECTURES))}.")
flags.DEFINE_string("hparams", "{}", 'Architecture hyper-parameters as a JSON object, e.g. {"width": 64}.')
flags.DEFINE_integer("epochs", 40, "Maximum training epochs (early stopping may end sooner).")
flags.DEFINE_integer("batch_size", 64, "Training batch size.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam's initial learning rate.")
flags.DEFINE_integer("patience", 8, "Epochs without a better validation accuracy before stopping.")
flags.DEFINE_enum("lr_schedule", "cosine", LR_SCHEDULES, "Learning-rate schedule over the epochs.")


# Beyond one process: shards, their engine, tf.distribute (swtf.distribute.flags)

flags.DEFINE_integer("num_shards", 1, "Split certify/attack points or sweep members into this many shards; each "
                                      "writes its own result file and complete sets are merged.")
flags.DEFINE_integer("shard_index", None, "Run only this shard (0-based); default: every shard, in turn in-process "
                                          "or as parallel Ray tasks.")
flags.DEFINE_enum("engine", "inprocess", ENGINES, "Where shards (sweep members) run: in this process, or as "
                                                       "Ray tasks (pip install 'swtf[ray]').")
flags.DEFINE_string("ray_address", "auto", "Ray cluster: auto (the running one), host:port of its head, or local "
                                           "(start one on this machine for this command).")
flags.DEFINE_integer("ray_max_retries", 3, "Ray: times a task is resubmitted when its worker dies.")
flags.DEFINE_enum("strategy", "default", STRATEGIES,
                  "tf.distribute strategy of --mode=train: default (one device), mirrored (every local device), "
                  "multi_worker (the workers of TF_CONFIG).")


# --mode=train (swtf.modes.train)

flags.DEFINE_string("model_name", "teacher", "Name under which the trained model is saved in the run.")
flags.DEFINE_enum("training", "standard", TRAINING_LOSSES,
                  "standard: cross-entropy on clean inputs; pgd: PGD adversarial training (Madry et al.) at "
                  "--train_eps (L-inf); certified: IBP / CROWN-IBP certified training at --train_eps.")
flags.DEFINE_enum("certified_method", "ibp", CERTIFIED_TRAINING_METHODS, "--training=certified: the bound trained on.")
flags.DEFINE_float("certified_kappa_final", 0.5, "--training=certified: final weight of the clean loss (kappa).")
flags.DEFINE_integer("certified_warmup_epochs", 2, "--training=certified: clean epochs before the eps ramp.")
flags.DEFINE_float("train_eps", None, "--training=pgd: L-inf radius of the training attack (pixel units, [0, 1]).")
flags.DEFINE_integer("train_eps_ramp_epochs", 0, "--training=pgd: epochs over which the radius grows linearly "
                                                 "from 0 to --train_eps (0: the full radius from the start).")
flags.DEFINE_integer("train_pgd_steps", 7, "--training=pgd: PGD steps per batch (step size 2.5 * eps / steps).")
flags.DEFINE_float("train_clean_weight", 0.0, "--training=pgd: weight of the clean cross-entropy mixed into the "
                                              "adversarial one (0: adversarial examples only).")


# --mode=distill (swtf.modes.distill)

flags.DEFINE_string("teacher_path", None, "A .keras teacher to distil from (default: the run's 'teacher').")
flags.DEFINE_enum("distill_method", "soft_targets", DISTILL_METHODS,
                  "Student loss: labels (no teacher), logits (matching logits, MSE), soft_targets (student "
                  "softmax vs teacher softmax(z/T)), hinton (alpha*T^2*KL + (1-alpha)*CE).")
flags.DEFINE_list("temperatures", ["1"], "Teacher temperatures; several train one student each, chosen on "
                  "validation accuracy.")
flags.DEFINE_float("alpha", 0.9, "Hinton KD: weight of the soft (KL) term; 1 - alpha weighs the label term.")
flags.DEFINE_enum("distill_targets", "static", DISTILL_TARGETS,
                  "static: teacher logits computed once; online: teacher run on augmented batches each step.")
flags.DEFINE_integer("augment_shift", 2, "Online targets and augment:K transfer data: largest random shift "
                     "in pixels.")
flags.DEFINE_enum("augment_flip", "auto", ["auto", "on", "off"],
                  "Random horizontal flips; auto = only for mirror-symmetric data (cifar10).")
flags.DEFINE_string("transfer_data", None, "Extra unlabelled inputs: npz:PATH or augment:K.")
flags.DEFINE_string("sweep", None, "Factors study students, e.g. 'snn:width=32,128;scnn2:filters=8-16,32-64' "
                    "(';' between families, ':' between keys, ',' between values, '-' inside a tuple, "
                    "'none' = no layers).")
flags.DEFINE_list("sweep_methods", ["labels", "logits", "soft_targets"], "Factors study: training methods.")
flags.DEFINE_list("seeds", None, "Factors study: seeds to repeat each point over (default: --seed).")
flags.DEFINE_string("student_name", "student", "Name under which the distilled student is saved in the run.")


# --mode=search (swtf.modes.search)

flags.DEFINE_enum("tuner", "bayesian", TUNERS, "bayesian (max_trials students) or hyperband (epochs per "
                  "model up to --epochs, reduction factor 3).")
flags.DEFINE_integer("max_trials", 10, "Bayesian optimisation: number of students to try.")
flags.DEFINE_integer("max_params", None, "Parameter budget: a larger student scores validation accuracy 0.")
flags.DEFINE_list("search_families", list(SEARCH_FAMILIES), "Student families to search over.")
flags.DEFINE_bool("search_overwrite", False, "Start the search over instead of resuming its folder.")


# --mode=prune (swtf.modes.prune)

flags.DEFINE_string("prune_model", "student", "Name of the run's trained model to prune.")
flags.DEFINE_string("prune_teacher", "teacher", "The run's teacher: --finetune=distill learns from its logits; "
                                                "it is also plotted when present.")
flags.DEFINE_string("prune_output", None, "Name of the pruned model in the run (default: <prune_model>_pruned).")
flags.DEFINE_enum("prune_policy", "layer", PRUNE_POLICIES,
                  "Which filters go: the same fraction of each layer, one fraction ranked across layers, or all "
                  "below an L1 threshold.")
flags.DEFINE_float("prune_fraction", 0.5, "Share of the student's conv filters to remove (layer, global).")
flags.DEFINE_float("prune_threshold", None, "L1 norm below which a filter is removed (policy threshold).")
flags.DEFINE_enum("prune_schedule", "polynomial", PRUNE_SCHEDULES,
                  "oneshot: remove all at once; polynomial: tfmot's cubic ramp over --prune_steps rounds; "
                  "constant: tfmot's constant target (prunes at the first round).")
flags.DEFINE_integer("prune_steps", 3, "Prune-and-fine-tune rounds of the polynomial and constant schedules.")
flags.DEFINE_enum("finetune", "distill", FINETUNING,
                  "Fine-tuning after each round: on the teacher's logits, on the labels, or none.")
flags.DEFINE_enum("prune_distill_loss", "hinton", PRUNE_DISTILL_LOSSES, "Loss of --finetune=distill.")
flags.DEFINE_float("prune_temperature", 4.0, "Temperature of the hinton distillation loss.")
flags.DEFINE_float("prune_alpha", 0.9, "Weight of the soft term of the hinton distillation loss.")
flags.DEFINE_bool("prune_sensitivity", True, "Also measure and plot each layer's sensitivity to pruning.")


# --mode=attack (swtf.modes.attack)

flags.DEFINE_enum("attack", "pgd", ATTACKS, "Attack: pgd (first start at x, then random ones, "
                  "--attack_restarts), apgd (Auto-PGD: adaptive step size and momentum, restarts as pgd), "
                  "fgsm (one step), bim (PGD from x), mim (momentum, from x).")
flags.DEFINE_enum("attack_norm", "linf", NORMS, "Threat model: L-inf or L2 ball, within [0, 1].")
flags.DEFINE_list("attack_eps", ["0", "0.025", "0.05", "0.1", "0.15", "0.2"],
                  "Radii of the curve (pixel units, [0, 1]); 0 gives the clean accuracy.")
flags.DEFINE_list("attack_models", ["all"], "The run's models to attack: 'all', or a list of names.")
flags.DEFINE_integer("attack_points", 200, "Attack the first this many test points (the same for every model).")
flags.DEFINE_list("attack_seeds", ["0", "1", "2"], "Seeds of PGD's random restarts, one run each; the curves show "
                                                   "their spread (fgsm, bim, mim are deterministic: first seed).")
flags.DEFINE_integer("attack_restarts", None, f"PGD/APGD starts per point: the first at x, the others at random "
                     f"points drawn from the seed (default {PGD_RESTARTS} for swtf's PGD and APGD, 1 for the other "
                     "attacks and the cleverhans backend; study and attack mode).")
flags.DEFINE_enum("attack_backend", "swtf", ATTACK_BACKENDS,
                  "Who crafts the examples: swtf, or cleverhans 4's PGD (pgd only, one restart, >= 3 steps).")
flags.DEFINE_integer("attack_batch_size", ATTACK_BATCH_SIZE,
                     "Points attacked at once. Random starts are drawn per batch, so shards (--num_shards) are made "
                     "of whole batches: lower it for finer shards.")
flags.DEFINE_enum("attack_band", "minmax", ATTACK_BANDS, "Band around each curve: min-max or "
                                                                     "mean -/+ one std over seeds.")


# --mode=certify (swtf.modes.certify)

flags.DEFINE_list("certify_models", None, "Names of the run's models to certify (default: all of them; those "
                                          "with unsupported layers are reported and skipped).")
flags.DEFINE_string("model_path", None, "Certify this .keras file or SavedModel folder instead of the run's models.")
flags.DEFINE_float("eps", 0.02, "Radius at which certified accuracy is reported (pixel units, [0, 1]).")
flags.DEFINE_enum("norm", "linf", NORMS, "Perturbation norm: linf (ball intersected with [0, 1]) or l2.")
flags.DEFINE_enum("method", "crown", CERTIFY_METHODS + ("bab",),
                  "Bound method for radii and certification; bab: complete verification (branch and bound with "
                  "beta-CROWN after alpha-CROWN, L-inf only) within --timeout_per_point per point and step.")
flags.DEFINE_float("timeout_per_point", 10.0, "--method=bab: seconds of branch and bound per point and radius tried.")
flags.DEFINE_integer("num_points", 100, "Certify the first this many test points.")
flags.DEFINE_float("max_radius", None, "Largest radius searched (default: 1 for linf, sqrt(input size) for l2).")
flags.DEFINE_float("exact_time_limit", 0.0, "Seconds per point for an exact MILP check at --eps (0: off; linf only).")


# --mode=study (swtf.modes.study)

flags.DEFINE_string("study_students", "snn:width=64;scnn1:filters=8;shallow_cnn:filters=8",
                    "Students to distil, in the sweep syntax of --sweep (families snn, scnn1, scnn2, shallow_cnn).")
flags.DEFINE_list("study_temperatures", ["1", "4", "10"],
                  "Temperatures ranged for the soft-target students (chosen on validation).")
flags.DEFINE_float("study_alpha", 0.9, "Weight of the soft term where a distillation loss mixes in labels.")
flags.DEFINE_float("study_eps", 0.1, "The study's L-inf radius (pixel units) for certified and PGD accuracy.")
flags.DEFINE_list("study_eps_grid", ["0", "0.05", "0.1", "0.15", "0.2"],
                  "L-inf radii of the robustness curves.")
flags.DEFINE_integer("study_points", 200, "Test points attacked and certified (the first N, same for every model).")
flags.DEFINE_list("study_seeds", None, "Training seeds: every model of the study is trained once per seed, and the "
                  "verdict bootstraps over seeds and test points (default: --seed alone, i.e. one training seed; "
                  "0,1,2 covers training randomness at three times the cost).")
flags.DEFINE_list("study_attack_seeds", ["0", "1", "2"], "Seeds of the study's PGD and APGD random restarts; curves "
                                                         "show their spread.")
flags.DEFINE_integer("attack_steps", 20, "PGD steps per restart (study and attack mode).")
flags.DEFINE_integer("study_apgd_steps", 100, "APGD steps per restart of the study's second attack (0: PGD only); "
                                              "a point counts as robust only if every attack run missed it.")
flags.DEFINE_list("study_certify_methods", ["crown"], "Bound methods for certified radii (first one is reported).")
flags.DEFINE_float("study_max_radius", 0.5, "Largest radius the certified-radius bisection tries.")
flags.DEFINE_float("study_prune_fraction", 0.5, "Share of the best student's filters removed by pruning.")
flags.DEFINE_integer("study_prune_steps", 2, "Prune-and-fine-tune rounds (tfmot polynomial schedule).")
flags.DEFINE_enum("robust_method", "ibp", ["ibp", "crown-ibp"], "Certified training of the robust teacher and "
                  "the robust students (at --study_eps).")
flags.DEFINE_string("robust_model", "convex_cnn", "Architecture of the robust teacher, trained with the certified "
                    "loss. Default: Wong & Kolter's certifiable convex_cnn (IBP training of a deep pooled teacher "
                    "such as digits_cnn collapses: test accuracy 0.11 on digits).")
flags.DEFINE_string("robust_hparams", None, "Hyper-parameters of the robust teacher as JSON (default: --hparams if "
                    "--robust_model is --model, else {}).")
flags.DEFINE_integer("robust_warmup_epochs", 2, "Clean epochs before the certified training's eps ramp.")
flags.DEFINE_integer("robust_ramp_epochs", 10, "Epochs of the certified training's eps and kappa ramp.")
flags.DEFINE_string("force_stage", None, "Recompute this stage and every stage downstream of it.")


# --mode=export (swtf.modes.export)

flags.DEFINE_string("export_model", "teacher", "Name of the run's trained model to export.")
flags.DEFINE_string("export_dir", None, "Destination folder, or .onnx file (default: saved_models/<run>_<model>"
                                        "[.onnx]).")
flags.DEFINE_enum("export_format", "savedmodel", ["savedmodel", "onnx"], "Export format.")


# --mode=verify (swtf.modes.verify)

flags.DEFINE_string("onnx", None, "ONNX network to verify (with --vnnlib).")
flags.DEFINE_string("vnnlib", None, "VNN-LIB property to verify on --onnx.")
flags.DEFINE_float("timeout", 60.0, "Seconds for one instance (--instances uses each row's own timeout).")
flags.DEFINE_string("results_file", None, "Where to write the VNN-COMP results file (one instance) or the "
                                          "results CSV (--instances).")
flags.DEFINE_string("instances", None, "A VNN-COMP instances CSV (onnx,vnnlib,timeout rows) to run instead.")


def check_values(fv):
    """Checks every flag value that needs no mode context (a one-line `SwtfError`), before TensorFlow loads.

    The modes run the same checks again where they build their `Options` (which the Python API uses too), and
    add the ones that need the data or the run.
    """
    check_common(fv)
    parse_hparams(fv.hparams)
    if fv.robust_hparams is not None:
        parse_hparams(fv.robust_hparams, "robust_hparams")
    check_radius(fv.eps, "eps", fv.norm)
    if fv.max_radius is not None:
        check_radius(fv.max_radius, "max_radius", fv.norm)
    if fv.train_eps is not None:
        check_radius(fv.train_eps, "train_eps")
    check_radius(fv.study_eps, "study_eps")
    check_radius(fv.study_max_radius, "study_max_radius")
    for flag, norm in (("attack_eps", fv.attack_norm), ("study_eps_grid", "linf")):
        for eps in parse_numbers(getattr(fv, flag), flag):
            check_radius(eps, flag, norm, zero_ok=True)
    for flag in ("temperatures", "study_temperatures"):
        parse_numbers(getattr(fv, flag), flag)
    for flag in ("attack_seeds", "study_seeds", "study_attack_seeds", "seeds"):
        if getattr(fv, flag):
            parse_numbers(getattr(fv, flag), flag, int)


def check_common(fv):
    """Checks the flags every mode shares (`swtf.config.config_from_flags` builds the `Config` from them)."""
    if fv.dataset not in ("digits",) + DATASETS and not (fv.dataset.startswith("npz:") and len(fv.dataset) > 4):
        raise SwtfError(f"unknown data set {fv.dataset!r}; choose one of digits, {', '.join(DATASETS)}, npz:PATH")
    if not 0.0 < fv.val_fraction < 1.0:
        raise SwtfError(f"--val_fraction must be in (0, 1), got {fv.val_fraction}")
    for name in ("train_limit", "test_limit"):
        if getattr(fv, name) is not None and getattr(fv, name) < 1:
            raise SwtfError(f"--{name} must be a positive count, got {getattr(fv, name)}")
    if fv.model not in ARCHITECTURES:
        raise SwtfError(f"unknown --model {fv.model!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    if fv.seed < 0:
        raise SwtfError(f"--seed must be >= 0, got {fv.seed}")


def parse_numbers(values, flag, kind=float):
    """A list flag's values as a tuple of `kind` (one-line error for a non-number or an empty list)."""
    try:
        numbers = tuple(kind(v) for v in values)
    except ValueError:
        raise SwtfError(f"--{flag} must be a comma-separated list of numbers, got {','.join(values)}") from None
    if not numbers:
        raise SwtfError(f"--{flag} needs at least one value")
    return numbers


def check_radius(value, flag, norm="linf", zero_ok=False):
    """`value` as a float if it is a perturbation radius that makes sense in pixel units: an L-inf ball of
    radius 1 around a [0, 1] image already covers the whole box (so 1e9 is a typo), an L2 radius is finite."""
    value = float(value)
    low = "[0" if zero_ok else "(0"
    high = "1] (L-inf over the [0, 1] input box)" if norm == "linf" else "inf) (L2)"
    inside = (value >= 0 if zero_ok else value > 0) and math.isfinite(value) and (norm != "linf" or value <= 1)
    if not inside:
        raise SwtfError(f"--{flag} must be a finite radius in {low}, {high}, got {value:g}")
    return value


def parse_hparams(text, flag="hparams"):
    """A JSON object of architecture hyper-parameters (one-line error otherwise)."""
    try:
        hparams = json.loads(text)
    except json.JSONDecodeError as err:
        raise SwtfError(f"--{flag} must be a JSON object such as '{{\"width\": 64}}': {err}") from None
    if not isinstance(hparams, dict):
        raise SwtfError(f"--{flag} must be a JSON object such as '{{\"width\": 64}}', got {text!r}")
    return hparams



def check_command_line(argv):
    """Raises `SwtfError` with one line for what absl would misread or report without a place.

    absl reads a flagfile line by line and takes `--name` without `=` of a non-boolean flag as asking for the
    next argument as its value: the next line of a flagfile (`--run_dir` then `--epochs=3` sets run_dir to
    "--epochs=3") or the next flag on the command line. Its errors in a flagfile name neither the file nor
    the line. Here every flagfile (nested ones too) is checked line by line first: unknown flags, missing
    values and values the flag's parser rejects are reported as `PATH:LINE: ...`.
    """
    _check_arguments(argv[1:], where=None)


def _check_arguments(arguments, where):
    """Checks `arguments` (command-line words, or one flagfile's lines numbered by `where(i)`)."""
    position = iter(range(len(arguments)))
    for i in position:
        word = arguments[i].strip()
        if word == "--":
            return
        if not word.startswith("-") or word in ("-", "--"):
            continue  # positional words are main.py's to refuse
        name, has_value, value = word.lstrip("-").partition("=")
        place = f"{where(i)}: " if where else ""
        if name == "flagfile":
            if not has_value:
                if i + 1 >= len(arguments):
                    raise SwtfError(f"{place}--flagfile needs a path: --flagfile=flags/digits.cfg")
                value = arguments[next(position)]
            _check_flagfile(value, place)
            continue
        flag = _flag_named(name)
        if flag is None:
            if where:  # on the command line absl's own message is as good (and it knows --help)
                raise SwtfError(f"{place}unknown flag --{name} (see --helpfull)")
            continue
        if flag.boolean and not has_value:
            continue
        if not has_value:
            following = arguments[i + 1] if i + 1 < len(arguments) else None
            if where or following is None or following.startswith("-"):
                raise SwtfError(f"{place}--{name} needs a value: write --{name}=VALUE")
            value = arguments[next(position)]
        if name.startswith("no") and flag.boolean and flag.name != name:
            raise SwtfError(f"{place}--{name} takes no value; write --{flag.name}={value}")
        try:
            flag.parser.parse(value)
        except (ValueError, flags.Error) as err:
            raise SwtfError(f"{place}--{name}={value}: {str(err).splitlines()[0]}") from None


def _flag_named(name):
    """The defined flag `name`, or the boolean flag `x` for `name` = "nox"; None if there is none."""
    if name in flags.FLAGS:
        return flags.FLAGS[name]
    if name.startswith("no") and name[2:] in flags.FLAGS and flags.FLAGS[name[2:]].boolean:
        return flags.FLAGS[name[2:]]
    return None


def _check_flagfile(path, place):
    """Checks flagfile `path`'s lines (comments: # or //) as `_check_arguments` does, naming PATH:LINE."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise SwtfError(f"{place}cannot read flagfile {path}: {reason}; pass an existing text file of "
                        f"--name=value lines") from None
    numbered = [(number, line.strip()) for number, line in enumerate(lines, 1)
                if line.strip() and not line.strip().startswith(("#", "//"))]
    for number, line in numbered:
        if not line.startswith("-"):
            raise SwtfError(f"{path}:{number}: expected a flag such as --name=value, got {line!r}")
    _check_arguments([line for _, line in numbered], where=lambda i: f"{path}:{numbered[i][0]}")
