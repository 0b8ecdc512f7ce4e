"""`--mode=train --training=certified` through the CLI: the engine certifies more test points of the
certified-trained model than of the standard one (measured by swtf.certify, not by the training loss).

The CI-sized run measures IBP-certified accuracy (the standard model's is near 0); the slow test in
train_certified_test.py makes the stronger CROWN claim with longer training."""

import numpy as np

from swtf import certify, data, runs
from tests.cli_helpers import assert_one_line_error, swtf_cli

EPS = 0.1


def test_certified_training_beats_standard_training_on_certified_accuracy(tmp_path):
    run_dir = str(tmp_path)
    common = ["--mode=train", "--model=convex_cnn", "--hparams={}", "--epochs=20", "--quiet", f"--run_dir={run_dir}"]
    assert swtf_cli(*common, "--model_name=standard").returncode == 0
    result = swtf_cli(*common, "--model_name=robust", "--training=certified", f"--train_eps={EPS}",
                      "--train_eps_ramp_epochs=8", "--certified_warmup_epochs=1")
    assert result.returncode == 0, result.stderr
    assert "certified (ibp) eps 0.1" in result.stdout
    digits = data.load_dataset("digits", seed=0)
    x, y = digits.x_test[:120], digits.y_test[:120]
    scores = {}
    for name in ("standard", "robust"):
        model, record = runs.load_trained(run_dir, name)
        scores[name] = float(np.mean(np.all(certify.margin_bounds(model, x, y, EPS, method="ibp") > 0, axis=1)))
    assert record["metrics"]["adversarial"]["method"] == "ibp"
    assert scores["robust"] > scores["standard"] + 0.1, scores


def test_certified_training_flags_are_checked():
    assert_one_line_error(swtf_cli("--mode=train", "--training=certified"), "needs --train_eps > 0")
    assert_one_line_error(swtf_cli("--mode=train", "--training=certified", "--train_eps=0.1",
                                   "--certified_kappa_final=2"), "--certified_kappa_final")
