"""Every plot of the report, built from small synthetic data: titled, both axes labelled, the teacher thickest."""

import matplotlib.collections
import numpy as np
import pytest

from swtf import plotting
from swtf.attack import plots as attack_plots
from swtf.certify import plots as certify_plots
from swtf.report import plots as report_plots

TEACHER = {"test_accuracy": 0.95, "params": 20000}


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, intercepted before they are written."""
    saved = []
    monkeypatch.setattr(plotting, "save", lambda figure, path: saved.append(figure) or path)
    return saved


def _check_labels_and_teacher(figure):
    """Title and both axis labels are set, and every teacher line is thicker than every other line."""
    axes = figure.axes[0]
    assert axes.get_title() and axes.get_xlabel() and axes.get_ylabel()
    teacher = [line.get_linewidth() for line in axes.lines if "(teacher)" in line.get_label()]
    others = [line.get_linewidth() for line in axes.lines if "(teacher)" not in line.get_label()]
    assert teacher and others and min(teacher) > max(others)
    return axes


def _curve(accuracy, eps=(0.0, 0.1, 0.2)):
    return {"attack": "pgd", "settings": {"steps": 7, "restarts": 3}, "eps": list(eps), "points": 10,
            "seeds": list(range(len(accuracy[0]))), "accuracy": accuracy}


def test_distillation_and_pruning_plots(figures):
    students = [{"architecture": "snn", "method": m, "params": p, "test_accuracy": a, "selected": True,
                 "student": f"snn-{p}", "temperature": t, "val_accuracy": a - 0.01}
                for m, p, a, t in (("logits", 100, 0.9, None), ("soft_targets", 100, 0.92, 1.0),
                                   ("soft_targets", 100, 0.91, 4.0), ("logits", 400, 0.93, None))]
    steps = [{"step": i, "params": 400 - 100 * i, "test_accuracy": 0.93 - 0.01 * i, "val_accuracy": 0.92 - 0.01 * i}
             for i in range(3)]
    report_plots.distillation_accuracy_vs_params(students, "teacher", TEACHER, "a.png")
    report_plots.distillation_accuracy_vs_temperature(students, "teacher", TEACHER, "b.png")
    report_plots.pruning_accuracy_vs_params(steps, "teacher", TEACHER, "c.png")
    assert len(figures) == 3
    for figure in figures:
        _check_labels_and_teacher(figure)


def test_certify_plots(figures):
    radii = {"student": [0.1, 0.05, 0.0, 0.2], "teacher": [0.05, 0.02, 0.0, 0.1]}
    certify_plots.plot_sorted_radii(radii, "linf", "a.png", references=("teacher",))
    certify_plots.plot_certified_accuracy({n: (r, [True, True, False, True]) for n, r in radii.items()}, "linf",
                                          "b.png", references=("teacher",))
    for figure in figures:
        assert "(teacher)" in _check_labels_and_teacher(figure).get_legend().get_texts()[0].get_text()


def test_attack_plot_names_the_attack_and_bands_only_seeds_that_differ(figures):
    curves = {"student": _curve([[0.9, 0.9], [0.5, 0.7], [0.1, 0.1]]), "teacher": _curve([[0.9, 0.9], [0.6, 0.6],
                                                                                          [0.2, 0.2]])}
    attack_plots.plot_robustness_curves(curves, "a.png", references=("teacher",), title="Accuracy under attack")
    axes = _check_labels_and_teacher(figures[0])
    assert "PGD, 7 steps x 3 restarts, step size 2.5·ε/steps" in axes.get_title()
    bands = [c for c in axes.collections if isinstance(c, matplotlib.collections.PolyCollection)]
    assert len(bands) == 1 and "drawn for the 1 model(s) whose seeds differ" in axes.get_title()

    deterministic = {"teacher": curves["teacher"]}
    attack_plots.plot_robustness_curves(deterministic, "b.png", references=("teacher",),
                                        settings={"steps": 5, "restarts": 1, "step_size": 0.01})
    axes = figures[1].axes[0]
    assert not axes.collections and "deterministic" in axes.get_title()
    assert "5 steps x 1 restart, step size 0.01" in axes.get_title()


def test_robust_accuracy_plot_draws_solid_empirical_and_dashed_certified_lines(figures):
    eps = [0.0, 0.1, 0.2]
    empirical = {"student": [0.9, 0.6, 0.2], "teacher": [0.95, 0.5, 0.1]}
    certified = {"student": [0.9, 0.4, 0.0], "teacher": [0.95, 0.3, 0.0]}
    report_plots.robust_accuracy_vs_eps(eps, empirical, certified, "teacher", "title", 10, "crown", "a.png")
    axes = _check_labels_and_teacher(figures[0])
    by_label = {line.get_label(): line for line in axes.lines}
    assert by_label["teacher (teacher)"].get_linestyle() == "-"
    assert by_label["_teacher (teacher), certified"].get_linestyle() == "--"
    assert by_label["_student, certified"].get_color() == by_label["student"].get_color()
    np.testing.assert_allclose(by_label["_student, certified"].get_ydata(), certified["student"])
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert legend[0] == "teacher (teacher)" and "solid: empirical, correct under every attack run" in legend
    assert any(t.startswith("dashed: certified") for t in legend)
    assert axes.get_ylabel() == "robust accuracy (fraction of 10 test points)"
