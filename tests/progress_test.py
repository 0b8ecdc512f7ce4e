"""Progress of long steps: a bar with an ETA on a terminal, one plain line per step when redirected, none with
--quiet; checked on `swtf.progress` directly and on the CLI's redirected output (train, certify, attack)."""

import io
import re

import pytest

from swtf import progress
from tests.cli_helpers import swtf_cli

PROGRESS_LINE = re.compile(r"^\S+ \[\d+(/\d+)?\] ")  # "teacher [1/2] epoch 1: ..."


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def run_steps(stream, total=3, **kwargs):
    with progress.Progress("job", total, stream=stream, **kwargs) as bar:
        for n in range(3):
            bar.step(f"item {n + 1}", f"score {n}")
    return stream.getvalue()


def test_redirected_output_is_one_plain_line_per_step_with_an_eta():
    lines = run_steps(io.StringIO()).splitlines()
    assert [line.split(" (")[0] for line in lines] == ["job [1/3] item 1: score 0", "job [2/3] item 2: score 1",
                                                       "job [3/3] item 3: score 2"]
    assert "left)" in lines[0] and "left" not in lines[2]


def test_unknown_total_counts_steps_without_an_eta():
    lines = run_steps(io.StringIO(), total=None).splitlines()
    assert lines[2].startswith("job [3] item 3: score 2 (") and "left" not in lines[2]


def test_a_terminal_gets_a_redrawn_bar_with_an_eta():
    output = run_steps(FakeTerminal())
    assert "\r" in output and "3/3" in output and "item 3: score 2" in output
    assert re.search(r"\d\d:\d\d<\d\d:\d\d", output)  # elapsed<remaining
    assert not PROGRESS_LINE.search(output)


@pytest.mark.parametrize("stream", [io.StringIO, FakeTerminal])
def test_quiet_reports_nothing(stream):
    assert run_steps(stream(), quiet=True) == ""


def test_without_lines_only_a_terminal_shows_progress_and_results_still_print(capsys):
    redirected = io.StringIO()
    with progress.Progress("study", 2, lines=False, quiet=True, stream=redirected) as bar:
        bar.step("teacher")
        bar.write("study: teacher: done")
    assert redirected.getvalue() == ""
    assert capsys.readouterr().out == "study: teacher: done\n"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run with a 2-epoch teacher; the train command's captured (not a terminal) output."""
    run_dir = tmp_path_factory.mktemp("run")
    result = swtf_cli("--mode=train", "--epochs=2", "--train_limit=200", f"--run_dir={run_dir}")
    assert result.returncode == 0, result.stderr
    return run_dir, result


def assert_plain_and_small(result):
    output = result.stdout + result.stderr
    assert "\x1b[" not in output and "\r" not in output
    assert len(output) < 20_000, len(output)


def progress_lines(result):
    return [line for line in (result.stdout + result.stderr).splitlines() if PROGRESS_LINE.match(line)]


def test_training_prints_one_plain_line_per_model(trained_run):
    """A log gets one line per trained model (a study trains dozens, of up to 40 epochs each)."""
    _, result = trained_run
    assert_plain_and_small(result)
    assert not progress_lines(result)
    lines = [line for line in result.stdout.splitlines() if line.startswith("teacher: ")]
    assert len(lines) == 1 and re.match(r"teacher: 2 epochs, best val_accuracy [\d.]+ at epoch [12] \(", lines[0])


def test_summary_is_one_line_without_a_terminal_and_the_bar_on_one():
    for stream in (io.StringIO(), FakeTerminal()):
        with progress.Progress("teacher", 3, lines=False, stream=stream) as bar:
            for epoch in range(3):
                bar.step(f"epoch {epoch + 1}")
            bar.summary("3 epochs")
        if isinstance(stream, FakeTerminal):
            assert "3/3" in stream.getvalue() and "3 epochs" not in stream.getvalue()
        else:
            assert stream.getvalue().startswith("teacher: 3 epochs (") and stream.getvalue().count("\n") == 1


def test_certify_prints_one_plain_line_per_model(trained_run):
    run_dir, _ = trained_run
    result = swtf_cli("--mode=certify", "--num_points=5", f"--run_dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert_plain_and_small(result)
    lines = progress_lines(result)
    assert len(lines) == 1 and lines[0].startswith("certify [1/1] teacher: certified accuracy "), lines


@pytest.mark.parametrize("quiet", [False, True])
def test_attack_prints_one_plain_line_per_model_and_eps_unless_quiet(trained_run, quiet):
    run_dir, _ = trained_run
    result = swtf_cli("--mode=attack", f"--quiet={quiet}", "--attack_eps=0,0.1", "--attack_points=10",
                      "--attack_steps=2", f"--run_dir={run_dir}")
    assert result.returncode == 0, result.stderr
    assert_plain_and_small(result)
    expected = [] if quiet else ["attack [1/2] teacher eps 0", "attack [2/2] teacher eps 0.1"]
    assert [line.split(":")[0] for line in progress_lines(result)] == expected
    assert "attack: teacher (pgd" in result.stdout  # the one-line summary stays
