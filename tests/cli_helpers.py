"""Running the CLI as a user does, in a subprocess, and checking its one-line errors (shared by CLI tests)."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def swtf_cli(*args, cwd=None):
    """`python -m swtf.main ARGS` from the repository root; returns the CompletedProcess."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "swtf.main", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=600)


def assert_one_line_error(result, fragment):
    """Exit code 2, exactly one non-empty stderr line starting 'swtf: error:' and containing `fragment`."""
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("swtf: error:") and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr
