"""`--mode=study` (the default): one command from teacher to verdict, cached and resumable.

Stages run in order and each is skipped when it already finished with the same settings (see
`swtf.study.pipeline`); `--force_stage=NAME` recomputes one stage and everything downstream. `--study_seeds`
runs every stage once per training seed (`study_stages`).
"""

import dataclasses

from swtf import cli_flags
from swtf.errors import SwtfError
from swtf.modes import attack as attack_mode
from swtf.modes import report as report_mode
from swtf.study import pipeline, stages


@dataclasses.dataclass(frozen=True)
class Options:
    students: str
    temperatures: tuple
    alpha: float
    eps: float
    eps_grid: tuple
    num_points: int
    attack_seeds: tuple
    attack_steps: int
    attack_restarts: int
    apgd_steps: int
    certify_methods: tuple
    max_radius: float
    prune_fraction: float
    prune_steps: int
    robust_method: str
    robust_model: str
    robust_hparams: dict
    robust_warmup_epochs: int
    robust_ramp_epochs: int
    force_stage: str
    training_seeds: tuple = (0,)
    seed_suffix: str = ""  # set per training seed by `stages.seeded_config`: "" for the first seed, else "-seed<s>"
    split_seed: int = None  # the run's --seed (data split) where a training seed differs from it


STAGES = [
    pipeline.Stage("teacher", (), stages.teacher_settings, stages.run_teacher),
    pipeline.Stage("students", ("teacher",), stages.students_settings, stages.run_students),
    pipeline.Stage("prune", ("students",), stages.prune_settings, stages.run_prune),
    pipeline.Stage("robust_teacher", (), stages.robust_teacher_settings, stages.run_robust_teacher),
    pipeline.Stage("robust_students", ("students", "robust_teacher"), stages.robust_students_settings,
                   stages.run_robust_students),
    pipeline.Stage("attack", ("prune", "robust_students"), stages.attack_settings, stages.run_attack),
    pipeline.Stage("certify", ("prune", "robust_students"), stages.certify_settings, stages.run_certify),
]


def study_stages(training_seeds):
    """`STAGES` once per training seed: the first seed's stages keep their names (and, with the run's --seed,
    their keys), a further seed s's are named `<stage>-seed<s>` and read that seed's stages; each runs on the
    config of its seed (`stages.seeded_config`). `--force_stage=NAME` forces NAME of every seed."""
    found = []
    for seed in training_seeds:
        suffix = stages.seed_suffix(seed, training_seeds)
        for stage in STAGES:
            found.append(pipeline.Stage(
                stage.name + suffix, tuple(name + suffix for name in stage.reads),
                lambda config, stage=stage, seed=seed: stage.settings(stages.seeded_config(config, seed)),
                lambda context, stage=stage, seed=seed: stage.run(
                    dataclasses.replace(context, config=stages.seeded_config(context.config, seed))),
                group=stage.name))
    return found


def _robust_hparams(fv):
    """--robust_hparams, or by default --hparams when the robust teacher has --model's architecture, else {}."""
    if fv.robust_hparams is not None:
        return fv.robust_hparams
    return fv.hparams if fv.robust_model == fv.model else "{}"


def options_from_flags(fv):
    from swtf.certify import METHODS
    from swtf.distill import sweep

    temperatures = cli_flags.parse_numbers(fv.study_temperatures, "study_temperatures", float)
    eps_grid = cli_flags.parse_numbers(fv.study_eps_grid, "study_eps_grid", float)
    eps_grid = tuple(sorted(set(eps_grid) | {fv.study_eps}))
    attack_seeds = cli_flags.parse_numbers(fv.study_attack_seeds, "study_attack_seeds", int)
    training_seeds = (cli_flags.parse_numbers(fv.study_seeds, "study_seeds", int) if fv.study_seeds
                      else (fv.seed,))
    methods = tuple(fv.study_certify_methods)
    # The study's attacks are always swtf's PGD and APGD, whatever --attack says (that flag is attack mode's).
    restarts = attack_mode.PGD_RESTARTS if fv.attack_restarts is None else fv.attack_restarts
    cli_flags.check_radius(fv.study_eps, "study_eps")
    cli_flags.check_radius(fv.study_max_radius, "study_max_radius")
    for eps in eps_grid:
        cli_flags.check_radius(eps, "study_eps_grid", zero_ok=True)
    checks = [
        (temperatures and min(temperatures) > 0, "--study_temperatures must be positive numbers"),
        (fv.study_points >= 1, f"--study_points must be >= 1, got {fv.study_points}"),
        (min(attack_seeds) >= 0, "--study_attack_seeds must be non-negative integers"),
        (min(training_seeds) >= 0, "--study_seeds must be non-negative integers"),
        (len(set(training_seeds)) == len(training_seeds), "--study_seeds must not repeat a seed"),
        (fv.study_apgd_steps >= 0, f"--study_apgd_steps must be >= 0, got {fv.study_apgd_steps}"),
        (fv.attack_steps >= 1 and restarts >= 1, "--attack_steps and --attack_restarts must be >= 1"),
        (methods and set(methods) <= set(METHODS), f"--study_certify_methods must be among {', '.join(METHODS)}"),
        (0 < fv.study_prune_fraction < 1, "--study_prune_fraction must be in (0, 1)"),
        (fv.study_prune_steps >= 1, "--study_prune_steps must be >= 1"),
        (fv.robust_warmup_epochs >= 0 and fv.robust_ramp_epochs >= 0,
         "--robust_warmup_epochs and --robust_ramp_epochs must be >= 0"),
        (0 <= fv.study_alpha <= 1, "--study_alpha must be in [0, 1]"),
        (fv.force_stage is None or fv.force_stage in [s.name for s in STAGES],
         f"--force_stage must be one of {', '.join(s.name for s in STAGES)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise SwtfError(message)
    sweep.parse_sweep(fv.study_students)  # fails early on a bad student list
    return Options(students=fv.study_students, temperatures=temperatures, alpha=fv.study_alpha, eps=fv.study_eps,
                   eps_grid=eps_grid, num_points=fv.study_points, attack_seeds=attack_seeds,
                   attack_steps=fv.attack_steps, attack_restarts=restarts, apgd_steps=fv.study_apgd_steps,
                   certify_methods=methods,
                   max_radius=fv.study_max_radius,
                   prune_fraction=fv.study_prune_fraction, prune_steps=fv.study_prune_steps,
                   robust_method=fv.robust_method, robust_model=fv.robust_model,
                   robust_hparams=cli_flags.parse_hparams(_robust_hparams(fv), "robust_hparams"),
                   robust_warmup_epochs=fv.robust_warmup_epochs,
                   robust_ramp_epochs=fv.robust_ramp_epochs, force_stage=fv.force_stage,
                   training_seeds=training_seeds)


def run(config):
    data = config.load_data()
    print(f"study: {data.summary()} -> {config.run_dir}")
    pipeline.run_pipeline(study_stages(config.options.training_seeds), config, data,
                          force_stage=config.options.force_stage)
    stages.write_seeds(config)
    report_mode.run(config)
