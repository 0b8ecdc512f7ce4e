"""`--mode=verify` as a user runs it: the instances CSV and the VNN-COMP results file agree with
`verify_property` called directly, and bad flags are one line with exit code 2."""

import csv
import os
import types

import numpy as np
import pytest

from swtf.errors import SwtfError
from swtf.modes import verify as verify_mode
from swtf.onnx import from_onnx
from swtf.vnnlib import read_vnnlib
from swtf.vnnlib.verify import verify_property
from tests.cli_helpers import swtf_cli

TEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "vnncomp", "test")


def test_instances_csv_gives_the_library_verdicts(tmp_path):
    """Rows resolve from the CSV's folder (absolute paths stay), each with its own timeout."""
    instances = tmp_path / "instances.csv"
    instances.write_text(f"{TEST}/test_nano.onnx,{TEST}/test_nano.vnnlib,60\n"
                         f"{TEST}/test_small.onnx,{TEST}/test_small.vnnlib,30")
    out = tmp_path / "results.csv"
    result = swtf_cli("--mode=verify", f"--instances={instances}", f"--results_file={out}", f"--run_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(out)))
    assert [os.path.basename(r["onnx"]) for r in rows] == ["test_nano.onnx", "test_small.onnx"]
    assert [float(r["timeout"]) for r in rows] == [60, 30]
    for row in rows:
        prop = read_vnnlib(row["vnnlib"])
        direct = verify_property(from_onnx(row["onnx"], *prop.input_hull()), prop, 60)
        assert row["result"] == direct.result
        assert 0 < float(row["seconds"]) < float(row["timeout"])
    assert "2 instances: unsat 2" in result.stdout


def test_one_instance_writes_the_results_file(tmp_path):
    out = tmp_path / "out.txt"
    result = swtf_cli("--mode=verify", f"--onnx={TEST}/test_sat.onnx", f"--vnnlib={TEST}/test_prop.vnnlib",
                      "--timeout=60", f"--results_file={out}", f"--run_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "sat" and lines[1].startswith("((X_0 ") and lines[-1].endswith("))") and len(lines) == 11
    x = np.array([float(line.split()[-1].rstrip(")")) for line in lines[1:6]])
    y = np.array([float(line.split()[-1].rstrip(")")) for line in lines[6:]])
    net = from_onnx(f"{TEST}/test_sat.onnx")
    np.testing.assert_array_equal(net.runtime_outputs(x[None])[0], y)
    assert read_vnnlib(f"{TEST}/test_prop.vnnlib").violated_by(x[None], y[None])[0]


def flags(**overrides):
    values = dict(onnx=None, vnnlib=None, timeout=60.0, results_file=None, instances=None)
    values.update(overrides)
    return types.SimpleNamespace(**values)


@pytest.mark.parametrize("overrides,message", [
    (dict(), "needs --onnx"),
    (dict(onnx=f"{TEST}/test_sat.onnx"), "needs --onnx"),
    (dict(onnx=f"{TEST}/test_sat.onnx", vnnlib=f"{TEST}/test_prop.vnnlib", instances=f"{TEST}/test_instances.csv"),
     "either --instances"),
    (dict(onnx="/no/such.onnx", vnnlib=f"{TEST}/test_prop.vnnlib"), "--onnx=/no/such.onnx is not a file"),
    (dict(onnx=f"{TEST}/test_sat.onnx", vnnlib=f"{TEST}/test_prop.vnnlib", timeout=0.0), "--timeout must be"),
])
def test_bad_flags_are_refused(overrides, message):
    with pytest.raises(SwtfError, match=message):
        verify_mode.options_from_flags(flags(**overrides))


def test_a_property_of_another_network_is_one_line_and_exit_2(tmp_path):
    result = swtf_cli("--mode=verify", f"--onnx={TEST}/test_nano.onnx", f"--vnnlib={TEST}/test_prop.vnnlib",
                      f"--run_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("swtf: error: the VNN-LIB property has 5 inputs")
