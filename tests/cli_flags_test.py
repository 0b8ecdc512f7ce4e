"""The command line's flags: parsed and checked before TensorFlow loads, flagfile errors with file and line,
and choice lists that agree with the library's."""

import subprocess
import sys
import textwrap

import pytest

from swtf import cli_flags
from tests.cli_helpers import REPO, assert_one_line_error, swtf_cli


def test_choices_agree_with_the_library():
    """cli_flags cannot import the library (TensorFlow); each of its lists must be the library's own."""
    from swtf import attack, certify, data, models
    from swtf.attack import curves, lp_balls
    from swtf.attack import plots as attack_plots
    from swtf.certify import api
    from swtf.distill import trainer
    from swtf.distribute import flags as distribute_flags
    from swtf.modes import attack as attack_mode
    from swtf.modes import prune as prune_mode
    from swtf.modes import train as train_mode
    from swtf.prune import schedule
    from swtf.search import space, tuning
    from swtf.train import certified, loop

    pairs = {
        "DATASETS": tuple(data.TFDS_NAMES), "ARCHITECTURES": tuple(models.ARCHITECTURES),
        "LR_SCHEDULES": loop.LR_SCHEDULES, "ENGINES": distribute_flags.ENGINES,
        "STRATEGIES": distribute_flags.STRATEGIES, "TRAINING_LOSSES": tuple(train_mode.TRAINING_LOSSES),
        "CERTIFIED_TRAINING_METHODS": certified.METHODS, "DISTILL_METHODS": tuple(trainer.METHODS),
        "DISTILL_TARGETS": tuple(trainer.TARGETS), "TUNERS": tuple(tuning.TUNERS),
        "SEARCH_FAMILIES": tuple(space.FAMILY_SPACES), "PRUNE_POLICIES": tuple(prune_mode.POLICIES),
        "PRUNE_SCHEDULES": prune_mode.SCHEDULES, "FINETUNING": prune_mode.FINETUNING,
        "PRUNE_DISTILL_LOSSES": schedule.DISTILL_LOSSES, "ATTACKS": tuple(attack.ATTACKS),
        "NORMS": lp_balls.NORMS, "ATTACK_BACKENDS": curves.BACKENDS, "ATTACK_BANDS": attack_plots.BANDS,
        "CERTIFY_METHODS": tuple(certify.METHODS), "PGD_RESTARTS": attack_mode.PGD_RESTARTS,
        "ATTACK_BATCH_SIZE": attack_mode.DEFAULT_BATCH_SIZE,
    }
    for name, library in pairs.items():
        assert getattr(cli_flags, name) == library, name
    assert api.NORMS == lp_balls.NORMS


def test_flag_errors_come_before_tensorflow_is_imported():
    """A bad flag ends the program while TensorFlow is still unloaded (so the error appears at once)."""
    code = textwrap.dedent("""
        import sys
        from swtf import main
        try:
            main.parse_flags(["swtf", "--mode=train", "--epochs=many"])
        except SystemExit as stop:
            print(stop.code, "tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.split() == ["2", "False", "False"], result.stdout + result.stderr
    assert "--epochs=many" in result.stderr


@pytest.mark.parametrize("lines,fragment", [
    ("--epochs=3\n# a comment\n\n--run_dir\n--seed=2\n", "bad.cfg:4: --run_dir needs a value"),
    ("--epochs=3\n--epochs=abc\n", "bad.cfg:2: --epochs=abc"),
    ("// comment\n--no_such_flag=4\n", "bad.cfg:2: unknown flag --no_such_flag"),
    ("--method=exact\n", "bad.cfg:1: --method=exact: value should be one of"),
    ("epochs=3\n", "bad.cfg:1: expected a flag such as --name=value"),
    ("--flagfile=/no/such/inner.cfg\n", "cannot read flagfile /no/such/inner.cfg"),
])
def test_flagfile_errors_name_the_file_and_the_line(tmp_path, lines, fragment):
    (tmp_path / "bad.cfg").write_text(lines)
    with pytest.raises(cli_flags.SwtfError, match=fragment.replace("/", ".")) as err:
        cli_flags.check_command_line(["swtf", f"--flagfile={tmp_path / 'bad.cfg'}"])
    assert "\n" not in str(err.value)


def test_nested_flagfile_errors_name_the_inner_file(tmp_path):
    (tmp_path / "inner.cfg").write_text("--seed=x\n")
    (tmp_path / "outer.cfg").write_text(f"--epochs=2\n--flagfile={tmp_path / 'inner.cfg'}\n")
    with pytest.raises(cli_flags.SwtfError, match="inner.cfg:1: --seed=x"):
        cli_flags.check_command_line(["swtf", f"--flagfile={tmp_path / 'outer.cfg'}"])


def test_a_flag_without_its_value_does_not_swallow_the_next_one():
    with pytest.raises(cli_flags.SwtfError, match="--run_dir needs a value"):
        cli_flags.check_command_line(["swtf", "--run_dir", "--epochs=3"])
    cli_flags.check_command_line(["swtf", "--run_dir", "runs/x", "--epochs", "3", "--quiet", "--noquiet"])


def test_cli_reports_a_flagfile_line_in_one_line(tmp_path):
    (tmp_path / "bad.cfg").write_text("--epochs=3\n--run_dir\n--seed=1\n")
    assert_one_line_error(swtf_cli(f"--flagfile={tmp_path / 'bad.cfg'}"), "bad.cfg:2: --run_dir needs a value")


@pytest.mark.parametrize("args,fragment", [
    (["--eps=1e9"], "--eps must be a finite radius in (0, 1]"),
    (["--study_eps=1e9"], "--study_eps must be a finite radius"),
    (["--attack_eps=0,0.1,7"], "--attack_eps must be a finite radius"),
    (["--norm=l2", "--eps=nan"], "--eps must be a finite radius"),
    (["--val_fraction=2"], "--val_fraction must be in (0, 1)"),
    (["--study_seeds=a"], "--study_seeds must be a comma-separated list of numbers"),
    (["--study_attack_seeds=0,x"], "--study_attack_seeds must be a comma-separated list of numbers"),
    (["--hparams={width"], "--hparams must be a JSON object"),
    (["--dataset=imagenet"], "unknown data set 'imagenet'"),
])
def test_bad_values_are_refused_before_tensorflow_is_imported(args, fragment):
    code = textwrap.dedent(f"""
        import sys
        from swtf import main
        try:
            main.parse_flags(["swtf", *{args!r}])
        except SystemExit as stop:
            print(stop.code, "tensorflow" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_l2_radius_above_one_is_accepted_early():
    from absl import flags
    from absl.testing import flagsaver

    with flagsaver.flagsaver(norm="l2", eps=3.0, max_radius=8.0):
        cli_flags.check_values(flags.FLAGS)
    with flagsaver.flagsaver(eps=3.0), pytest.raises(cli_flags.SwtfError, match="--eps"):
        cli_flags.check_values(flags.FLAGS)
