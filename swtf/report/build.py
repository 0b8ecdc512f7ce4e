"""Builds the report of a run from its artifacts only: metrics.json, report.md, report.html, PNG plots.

Missing artifacts (a stage not run yet) leave their section out with a note; nothing is recomputed here.
"""

import base64
import html
import os

import numpy as np

from swtf import io, runs
from swtf.attack.plots import plot_robustness_curves
from swtf.errors import SwtfError
from swtf.report import plots, verdict
from swtf.study.stages import artifact_path


def _read(config, name):
    path = artifact_path(config, name)
    return io.read_json(path) if os.path.isfile(path) else None


def _records(config):
    return {name: runs.read_record(config.run_dir, name) for name in runs.list_trained(config.run_dir)}


def _teachers(records):
    return [name for name, r in records.items() if r["metrics"].get("role") in ("teacher", "robust_teacher")]


def _verdicts(config, records, certify):
    """One verdict per teacher: its validation-best certifiable student, and its pruned student if certified."""
    method = certify["methods"][0]
    eps = certify["eps"]
    radii = {name: np.where(certify["correct"][name], by_method[method], 0.0)
             for name, by_method in certify["radii"].items()}
    summaries = {name: verdict.model_summary(radii[name], eps, certify["correct"][name], records[name]["params"])
                 for name in radii}
    rows = []
    for teacher in _teachers(records):
        if teacher not in radii:
            continue
        students = [n for n in radii if records[n]["metrics"].get("teacher") == teacher]
        if not students:
            continue
        distilled = [n for n in students if records[n]["metrics"].get("role") == "student"]
        chosen = max(distilled or students, key=lambda n: records[n]["metrics"].get("val_accuracy", 0.0))
        for student in [chosen] + [n for n in students if records[n]["metrics"].get("role") != "student"]:
            row = verdict.compare(summaries[teacher], summaries[student], radii[teacher], radii[student], eps,
                                  seed=config.seed)
            rows.append({"teacher": teacher, "student": student, **row,
                         "sentence": verdict.sentence(teacher, student, row, eps),
                         "teacher_summary": summaries[teacher], "student_summary": summaries[student]})
    return summaries, rows


def collect(config):
    """Everything the report shows, as one JSON-ready dict."""
    records = _records(config)
    if not records:
        raise SwtfError(f"run {config.run_dir} has no trained models yet; run the study (or train) first")
    metrics = {"run_dir": config.run_dir, "dataset": config.dataset, "seed": config.seed,
               "models": {n: {"architecture": r["architecture"], "params": r["params"], **{
                   k: v for k, v in r["metrics"].items() if k != "stage_key"}} for n, r in records.items()}}
    for name in ("students", "prune", "attack", "certify"):
        metrics[name] = _read(config, f"{name}.json")
    if metrics["certify"] and metrics["certify"].get("correct"):
        metrics["certified"], metrics["verdicts"] = _verdicts(config, records, metrics["certify"])
    return metrics


def make_plots(config, metrics):
    """Writes every plot the artifacts allow; returns [(title, path)]."""
    folder = runs.plots_dir(config.run_dir)
    made = []
    teacher = metrics["models"].get("teacher")
    if metrics["students"] and teacher:
        selected = [r for r in metrics["students"] if r["selected"]]
        made.append(("Distillation: accuracy against parameters", plots.distillation_accuracy_vs_params(
            selected, teacher, os.path.join(folder, "distill_accuracy_vs_params.png"))))
        made.append(("Distillation: accuracy against temperature", plots.distillation_accuracy_vs_temperature(
            metrics["students"], os.path.join(folder, "distill_accuracy_vs_temperature.png"))))
    if metrics["prune"] and teacher:
        made.append(("Pruning: accuracy against parameters", plots.pruning_accuracy_vs_params(
            metrics["prune"]["steps"], teacher, os.path.join(folder, "prune_accuracy_vs_params.png"))))
    if metrics["attack"]:
        path = os.path.join(folder, "attack_curves.png")
        plot_robustness_curves(metrics["attack"]["curves"], path,
                               title="Adversarial robustness under PGD")
        made.append(("Adversarial: accuracy under PGD against eps", path))
    if metrics.get("certified"):
        method = metrics["certify"]["methods"][0]
        radii = {n: np.where(metrics["certify"]["correct"][n], r[method], 0.0)
                 for n, r in metrics["certify"]["radii"].items()}
        made.append(("Certification: sorted certified radii", plots.sorted_radii(
            radii, method, os.path.join(folder, "certify_sorted_radii.png"))))
        made.append(("Certification: certified accuracy against eps", plots.certified_accuracy_vs_eps(
            radii, method, os.path.join(folder, "certify_accuracy_vs_eps.png"))))
    return made


def _model_table(metrics):
    certified = metrics.get("certified", {})
    header = ["model", "role", "architecture", "parameters", "test accuracy", "mean radius", "certified accuracy"]
    rows = []
    for name, m in metrics["models"].items():
        c = certified.get(name)
        rows.append([name, m.get("role", ""), m["architecture"], f"{m['params']:,}",
                     f"{m.get('test_accuracy', float('nan')):.4f}",
                     f"{c['mean_radius']:.4f}" if c else "not certifiable" if name in (
                         (metrics.get("certify") or {}).get("not_certifiable", {})) else "-",
                     f"{c['certified_accuracy']:.3f}" if c else "-"])
    return header, rows


def _markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header, rows):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(config, metrics, plot_files):
    """Writes report.md and a self-contained report.html (plots embedded as base64 PNG)."""
    eps = (metrics.get("certify") or {}).get("eps")
    title = f"swtf study: {metrics['dataset']}"
    verdict_lines = [v["sentence"] for v in metrics.get("verdicts", [])] or [
        "No verdict yet: the certification stage has not run."]
    header, rows = _model_table(metrics)
    notes = [f"Certified radii and certified accuracy are on the first {metrics['certify']['points']} test points "
             f"(method {metrics['certify']['methods'][0]}, L∞, input box [0, 1]); misclassified points count as "
             f"radius 0; certified accuracy is at eps={eps:g}." if metrics.get("certify") else ""]
    refused = (metrics.get("certify") or {}).get("not_certifiable", {})
    notes += [f"{name} is not certifiable: {reason}" for name, reason in refused.items()]
    md = [f"# {title}", "", "## Verdict", ""] + [f"- {line}" for line in verdict_lines] + [
        "", "## Models", "", _markdown_table(header, rows), ""] + [n for n in notes if n] + [""]
    for caption, path in plot_files:
        md += [f"## {caption}", "", f"![{caption}](plots/{os.path.basename(path)})", ""]
    io.write_text(os.path.join(config.run_dir, "report.md"), "\n".join(md))

    figures = []
    for caption, path in plot_files:
        with open(path, "rb") as f:
            encoded = base64.b64encode(f.read()).decode("ascii")
        figures.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{encoded}'>"
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}img{{max-width:100%}}
.verdict li{{margin:0.5em 0}}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Verdict</h2><ul class="verdict">{''.join(f'<li>{html.escape(v)}</li>' for v in verdict_lines)}</ul>
<h2>Models</h2>{_html_table(header, rows)}
{''.join(f'<p>{html.escape(n)}</p>' for n in notes if n)}
<h2>Plots</h2>{''.join(figures)}
</body></html>
"""
    io.write_text(os.path.join(config.run_dir, "report.html"), page)


def build_report(config):
    """Collects metrics, draws plots, writes metrics.json, report.md and report.html; returns the metrics."""
    metrics = collect(config)
    plot_files = make_plots(config, metrics)
    io.write_json(os.path.join(config.run_dir, "metrics.json"), metrics)
    render(config, metrics, plot_files)
    return metrics
