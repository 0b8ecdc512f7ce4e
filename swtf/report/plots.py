"""The report's own plots, each titled with labelled axes and units and the teacher emphasised, written as PNG files.

Every function takes plain rows read from the run's artifacts and a path, so plots never recompute
anything: what they show is what the artifacts hold. The attack and certification plots are those of
`swtf.attack.plots` and `swtf.certify.plots`.
"""

from matplotlib.lines import Line2D

from swtf import plotting


def _teacher_line(axes, name, accuracy, what):
    axes.axhline(accuracy, linestyle="--", **{**plotting.line_style(name, (name,)),
                                             "label": f"{name} (teacher), {what}"})


def distillation_accuracy_vs_params(rows, teacher_name, teacher, path):
    """Test accuracy of each selected student against its parameter count, per family and method."""
    figure, axes = plotting.model_axes()
    groups = {}
    for row in rows:
        groups.setdefault((row["architecture"], row["method"]), []).append(row)
    markers = {"logits": "o", "soft_targets": "s", "hinton": "^", "labels": "x"}
    for (family, method), group in sorted(groups.items()):
        group = sorted(group, key=lambda r: r["params"])
        axes.plot([r["params"] for r in group], [r["test_accuracy"] for r in group], marker=markers.get(method, "o"),
                  **plotting.line_style(f"{family}, {method.replace('_', ' ')}"))
    _teacher_line(axes, teacher_name, teacher["test_accuracy"], f"test, {teacher['params']:,} parameters")
    axes.set_xscale("log")
    plotting.finish(axes, "Distillation: students' test accuracy against their size (teacher dashed)",
                    "parameters (count, log scale)", "test accuracy (fraction of the test set)")
    return plotting.save(figure, path)


def distillation_accuracy_vs_temperature(rows, teacher_name, teacher, path):
    """Validation and test accuracy of the soft-target students against the teacher's temperature."""
    figure, axes = plotting.model_axes()
    students = sorted({r["student"] for r in rows if r.get("temperature")})
    for student in students:
        group = sorted((r for r in rows if r["student"] == student and r.get("temperature")),
                       key=lambda r: r["temperature"])
        temps = [r["temperature"] for r in group]
        line, = axes.plot(temps, [r["test_accuracy"] for r in group], marker="o",
                          **plotting.line_style(f"{student} (test)"))
        axes.plot(temps, [r["val_accuracy"] for r in group], marker="o", linestyle=":", color=line.get_color(),
                  **plotting.line_style(f"{student} (validation, selects T)"))
    _teacher_line(axes, teacher_name, teacher["test_accuracy"], "test")
    axes.set_xscale("log")
    temperatures = sorted({r["temperature"] for r in rows if r.get("temperature")})
    axes.set_xticks(temperatures, [f"{t:g}" for t in temperatures], minor=False)
    axes.minorticks_off()
    plotting.finish(axes, "Distillation: soft-target students' accuracy against the temperature (teacher dashed)",
                    "teacher temperature T (dimensionless, log scale)", "accuracy (fraction of the split)")
    return plotting.save(figure, path)


def pruning_accuracy_vs_params(steps, teacher_name, teacher, path):
    """Accuracy of each pruning step (step 0 = unpruned student) against parameters, with the teacher."""
    figure, axes = plotting.model_axes()
    params = [s["params"] for s in steps]
    axes.plot(params, [s["test_accuracy"] for s in steps], marker="o", **plotting.line_style("pruned student (test)"))
    axes.plot(params, [s["val_accuracy"] for s in steps], marker="o", linestyle=":",
              **plotting.line_style("pruned student (validation)"))
    for s in steps:
        axes.annotate(f"step {s['step']}", (s["params"], s["test_accuracy"]), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
    _teacher_line(axes, teacher_name, teacher["test_accuracy"], f"test, {teacher['params']:,} parameters")
    axes.set_xscale("log")
    plotting.finish(axes, "Pruning: the student's accuracy against its parameters (teacher dashed)",
                    "parameters (count, log scale)", "accuracy (fraction of the split)")
    return plotting.save(figure, path)


def robust_accuracy_vs_eps(eps_grid, empirical, certified, teacher, title, points, method, path):
    """Per model of `empirical` (`{name: accuracy per eps of eps_grid}`), its empirical robust accuracy (solid)
    and its certified one (dashed, from `certified`, same colour) against eps; `teacher` thick, black, on top."""
    figure, axes = plotting.model_axes()
    for name in sorted(empirical, key=lambda n: n != teacher):
        style = plotting.line_style(name, (teacher,))
        line, = axes.plot(eps_grid, empirical[name], marker="o", markersize=3, **style)
        axes.plot(eps_grid, certified[name], linestyle="--", marker="x", markersize=3,
                  **{**style, "color": line.get_color(), "label": f"_{style['label']}, certified"})
    styles = [Line2D([], [], color="gray", label="solid: empirical, correct under every attack run"),
              Line2D([], [], color="gray", linestyle="--", label=f"dashed: certified, {method} radius >= eps")]
    axes.set_ylim(-0.02, 1.02)
    plotting.finish(axes, title, plotting.radius_label("linf"), f"robust accuracy (fraction of {points} test points)",
                    extra_handles=styles)
    return plotting.save(figure, path)
