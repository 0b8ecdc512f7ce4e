"""Builds the report of a run from its artifacts only: metrics.json, report.md, report.html, PNG plots.

Missing artifacts (a stage not run yet) leave their section out with a note; nothing is recomputed here.
"""

import base64
import datetime
import glob
import html
import os
import platform
import sys

import numpy as np

import swtf
from swtf import io, runs
from swtf.attack.plots import describe_attack, plot_robustness_curves
from swtf.certify.plots import certified_accuracy_curve, plot_certified_accuracy, plot_sorted_radii
from swtf.errors import SwtfError
from swtf.report import plots, verdict
from swtf.study.stages import artifact_path


def _read(config, name):
    path = artifact_path(config, name)
    return io.read_json(path) if os.path.isfile(path) else None


def _records(config):
    return {name: runs.read_record(config.run_dir, name) for name in runs.list_trained(config.run_dir)}


def _teachers(records):
    return [name for name, r in records.items() if r["metrics"].get("role") in runs.TEACHER_ROLES]


def _radii(certify):
    """Per certifiable model, the first method's certified radius per point, misclassified points at 0."""
    method = certify["methods"][0]
    return {name: np.where(certify["correct"][name], by_method[method], 0.0)
            for name, by_method in certify["radii"].items()}


def _attack_radii(certify, attack):
    """Per model both stages cover, its attack radius per point (`verdict.attack_radii`) and whether it is
    empirically robust at the study's eps; {} without an attack stage. Both stages must share their points."""
    if not attack:
        return {}
    found = {}
    for name, curve in attack["curves"].items():
        if name not in certify["correct"]:
            continue
        if curve["points"] != certify["points"]:
            raise SwtfError(f"{name} was attacked on {curve['points']} points but certified on "
                            f"{certify['points']}; rerun the study so both stages use the same points")
        clean = certify["correct"][name]
        found[name] = (verdict.attack_radii(curve["correct"], curve["eps"], clean),
                       verdict.empirically_robust(curve["correct"], curve["eps"], certify["eps"], clean),
                       max(curve["eps"]))
    return found


def _pairs(records, names):
    """(teacher, student) pairs the verdict compares: each teacher's validation-best distilled student, then
    its other students (pruned, re-trained, straight); only models in `names`."""
    pairs = []
    for teacher in _teachers(records):
        students = [n for n in names if records[n]["metrics"].get("teacher") == teacher]
        if teacher not in names or not students:
            continue
        distilled = [n for n in students if records[n]["metrics"].get("role") == "student"]
        chosen = max(distilled or students, key=lambda n: records[n]["metrics"].get("val_accuracy", 0.0))
        others = [n for n in students if records[n]["metrics"].get("role") != "student"]
        pairs += [(teacher, student) for student in [chosen] + others]
    return pairs


def _verdicts(config, records, certify, attack):
    """Per-model summaries, one verdict row per pair and basis (Holm-corrected together), one claim per pair."""
    eps, method = certify["eps"], certify["methods"][0]
    radii = _radii(certify)
    under_attack = _attack_radii(certify, attack)
    summaries = {}
    for name in radii:
        summaries[name] = verdict.model_summary(radii[name], eps, certify["correct"][name], records[name]["params"])
        if name in under_attack:
            summaries[name].update(verdict.empirical_summary(radii[name], *under_attack[name]))
    values = {"certified": radii,
              "empirical": {n: np.minimum(r, grid_max) for n, (r, _, grid_max) in under_attack.items()}}
    pairs = _pairs(records, list(radii))
    rows = []
    for teacher, student in pairs:
        for basis in verdict.BASES:
            if teacher in values[basis] and student in values[basis]:
                rows.append({"teacher": teacher, "student": student, **verdict.compare(
                    summaries[teacher], summaries[student], values[basis][teacher], values[basis][student],
                    basis=basis, seed=config.seed)})
    verdict.decide(rows)
    claims = []
    for teacher, student in pairs:
        pair_rows = [r for r in rows if (r["teacher"], r["student"]) == (teacher, student)]
        answer, text = verdict.sentence(teacher, student, pair_rows, summaries, eps, method=method)
        claims.append({"teacher": teacher, "student": student, "answer": answer, "sentence": text})
        for row in pair_rows:
            row.update(sentence=text, teacher_summary=summaries[teacher], student_summary=summaries[student])
    return summaries, rows, claims


def read_flagfiles(run_dir):
    """{mode: {flag: value}} from the run's flags_<mode>.cfg files (the effective flags of each mode's last
    command); a bare boolean flag reads "true", its --no form "false"."""
    found = {}
    for path in sorted(glob.glob(os.path.join(run_dir, "flags_*.cfg"))):
        flags = {}
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        for line in lines:
            if not line.startswith("--"):
                continue
            name, has_value, value = line[2:].partition("=")
            if has_value:
                flags[name] = value
            elif name.startswith("no"):
                flags[name[2:]] = "false"
            else:
                flags[name] = "true"
        found[os.path.basename(path)[len("flags_"):-len(".cfg")]] = flags
    return found


def provenance(config, metrics):
    """What produced the report: swtf version, command, effective flags, seeds, attack and bound settings,
    date (UTC) and library versions."""
    import keras
    import tensorflow as tf

    flags = read_flagfiles(config.run_dir)
    study_flags = flags.get("study", {})
    attack, certify = metrics.get("attack") or {}, metrics.get("certify") or {}
    curve = next(iter(attack.get("curves", {}).values()), {})
    return {"version": swtf.__version__, "command": " ".join(sys.argv), "flags": flags,
            "seeds": {"training": int(study_flags.get("seed", metrics["seed"])), "attack": curve.get("seeds"),
                      "bootstrap": config.seed},
            "settings": {"attack": {**{k: attack.get(k) for k in ("attack", "norm", "steps", "restarts")},
                                    "eps_grid": curve.get("eps"), "points": curve.get("points")},
                         "certify": {"methods": certify.get("methods"), "eps": certify.get("eps"),
                                     "points": certify.get("points"),
                                     "max_radius": study_flags.get("study_max_radius")},
                         "bootstrap": {"samples": verdict.BOOTSTRAP_SAMPLES, "confidence": verdict.CONFIDENCE,
                                       "correction": "holm"}},
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
                         "python": platform.python_version()}}


def run_dataset(config):
    """The data set the run's models were trained on: the --dataset its study (or train) command recorded in
    its flags file; `--mode=report` alone leaves --dataset at its default, which would mislabel an MNIST run."""
    recorded = read_flagfiles(config.run_dir)
    for mode in ("study", "train", "distill"):
        if "dataset" in recorded.get(mode, {}):
            return recorded[mode]["dataset"]
    return config.dataset


def collect(config):
    """Everything the report shows, as one JSON-ready dict."""
    records = _records(config)
    if not records:
        raise SwtfError(f"run {config.run_dir} has no trained models yet; run the study (or train) first")
    metrics = {"run_dir": config.run_dir, "dataset": run_dataset(config), "seed": config.seed,
               "models": {n: {"architecture": r["architecture"], "params": r["params"], **{
                   k: v for k, v in r["metrics"].items() if k != "stage_key"}} for n, r in records.items()}}
    for name in ("students", "prune", "attack", "certify"):
        metrics[name] = _read(config, f"{name}.json")
    if metrics["certify"] and metrics["certify"].get("correct"):
        metrics["certified"], metrics["verdicts"], metrics["claims"] = _verdicts(
            config, records, metrics["certify"], metrics["attack"])
    metrics["provenance"] = provenance(config, metrics)
    return metrics


def _robust_accuracy_plots(metrics, folder):
    """Per teacher both stages cover, [(title, path, caption)] of its and its students' certified and empirical
    robust accuracy at every eps of the attack grid, on the same points."""
    certify, attack, models = metrics["certify"], metrics["attack"], metrics["models"]
    method = certify["methods"][0]
    covered = [n for n in certify["correct"] if n in attack["curves"]]
    made = []
    for teacher in [n for n in covered if models[n].get("role") in runs.TEACHER_ROLES]:
        members = [teacher] + [n for n in covered if models[n].get("teacher") == teacher]
        eps_grid = attack["curves"][teacher]["eps"]
        empirical, certified = {}, {}
        for name in members:
            clean, curve = certify["correct"][name], attack["curves"][name]
            empirical[name] = [float(np.mean(verdict.empirically_robust(curve["correct"], curve["eps"], eps, clean)))
                               for eps in eps_grid]
            certified[name] = certified_accuracy_curve(certify["radii"][name][method], clean, eps_grid)
        title = (f"Robust accuracy of {teacher} and its students, {metrics['dataset']}, L∞ norm\n"
                 f"{describe_attack(attack['attack'], _attack_settings(attack))}; certified by {method}")
        path = plots.robust_accuracy_vs_eps(eps_grid, empirical, certified, teacher, title, certify["points"],
                                            method, os.path.join(folder, f"robust_accuracy_{teacher}.png"))
        made.append((f"Robustness: certified and empirical robust accuracy of {teacher} and its students", path,
                     "The gap between a model's dashed and solid line is what the verifier cannot prove; compare "
                     "students with the teacher on the solid lines for robustness, on the dashed lines for "
                     "certifiability."))
    return made


def _attack_settings(attack):
    """The attack stage's steps, restarts and step size where stored (beside its curves)."""
    return {k: attack[k] for k in ("steps", "restarts", "step_size") if attack.get(k) is not None}


def make_plots(config, metrics):
    """Writes every plot the artifacts allow; returns [(title, path, caption)]."""
    folder = runs.plots_dir(config.run_dir)
    made = []
    teacher = metrics["models"].get("teacher")
    if metrics["students"] and teacher:
        selected = [r for r in metrics["students"] if r["selected"]]
        made.append(("Distillation: accuracy against parameters", plots.distillation_accuracy_vs_params(
            selected, "teacher", teacher, os.path.join(folder, "distill_accuracy_vs_params.png")), ""))
        made.append(("Distillation: accuracy against temperature", plots.distillation_accuracy_vs_temperature(
            metrics["students"], "teacher", teacher, os.path.join(folder, "distill_accuracy_vs_temperature.png")),
            ""))
    if metrics["prune"] and teacher:
        made.append(("Pruning: accuracy against parameters", plots.pruning_accuracy_vs_params(
            metrics["prune"]["steps"], "teacher", teacher, os.path.join(folder, "prune_accuracy_vs_params.png")), ""))
    references = [n for n, m in metrics["models"].items() if m.get("role") in runs.TEACHER_ROLES]
    if metrics["attack"]:
        path = os.path.join(folder, "attack_curves.png")
        points = next(iter(metrics["attack"]["curves"].values()))["points"]
        plot_robustness_curves(metrics["attack"]["curves"], path, references=references,
                               settings=_attack_settings(metrics["attack"]),
                               title=f"Accuracy under attack, {metrics['dataset']}, {points} test points")
        made.append(("Adversarial: accuracy under PGD against eps", path, ""))
    if metrics.get("certified"):
        certify = metrics["certify"]
        method = certify["methods"][0]
        title = f"{metrics['dataset']}, {method}, {certify['points']} test points, misclassified points at 0"
        radii = _radii(certify)
        path = os.path.join(folder, "certify_sorted_radii.png")
        plot_sorted_radii(radii, "linf", path, title=f"Certified radii, sorted ({title})", references=references)
        made.append(("Certification: sorted certified radii", path, ""))
        path = os.path.join(folder, "certify_accuracy_vs_eps.png")
        plot_certified_accuracy({n: (r, certify["correct"][n]) for n, r in radii.items()}, "linf", path,
                                title=f"Certified accuracy against eps ({title})", references=references)
        made.append(("Certification: certified accuracy against eps", path, ""))
        if metrics["attack"]:
            made += _robust_accuracy_plots(metrics, folder)
    return made


def _fmt(value, digits):
    return "-" if value is None else f"{value:.{digits}f}"


def _model_table(metrics):
    """Every model of the run: what it is, its accuracy on the whole test set and its certified radius."""
    certified = metrics.get("certified", {})
    points = (metrics.get("certify") or {}).get("points")
    header = ["model", "role", "architecture", "parameters", "test accuracy (whole test set)",
              f"mean radius ({points} points)", f"certified accuracy ({points} points)"]
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


def _robustness_tables(metrics):
    """Per teacher, [(teacher, header, rows)]: it and its certified students on the attacked and certified
    points: clean, certified and empirical accuracy, mean certified and attack radius, verifier gap."""
    certified, models = metrics.get("certified", {}), metrics["models"]
    if not certified:
        return []
    eps, points = metrics["certify"]["eps"], metrics["certify"]["points"]
    header = ["model", "role", "parameters", f"clean accuracy ({points} points)",
              f"certified accuracy at eps={eps:g}", f"empirical robust accuracy at eps={eps:g}",
              "mean certified radius", "mean attack radius", "verifier gap"]
    tables = []
    for teacher in [n for n in certified if models[n].get("role") in runs.TEACHER_ROLES]:
        members = [teacher] + [n for n in certified if models[n].get("teacher") == teacher]
        rows = [[n, models[n].get("role", ""), f"{models[n]['params']:,}", _fmt(certified[n]["clean_accuracy"], 3),
                 _fmt(certified[n]["certified_accuracy"], 3), _fmt(certified[n].get("empirical_robust_accuracy"), 3),
                 _fmt(certified[n]["mean_radius"], 4), _fmt(certified[n].get("mean_attack_radius"), 4),
                 _fmt(certified[n].get("verifier_gap"), 4)] for n in members]
        tables.append((teacher, header, rows))
    return tables


def _provenance_lines(metrics):
    """The provenance block as "label: value" lines (the flags go in their own block)."""
    p = metrics["provenance"]
    settings = p["settings"]
    return [f"swtf {p['version']}, created {p['created']}",
            f"command: {p['command']}",
            "versions: " + ", ".join(f"{k} {v}" for k, v in p["versions"].items()),
            "seeds: " + ", ".join(f"{k} {v}" for k, v in p["seeds"].items()),
            "attack: " + ", ".join(f"{k} {v}" for k, v in settings["attack"].items()),
            "bounds: " + ", ".join(f"{k} {v}" for k, v in settings["certify"].items()),
            "verdict statistics: " + ", ".join(f"{k} {v}" for k, v in settings["bootstrap"].items())]


def _verdict_notes(metrics):
    """How to read the verdict: point set, statistics, what it does not cover."""
    if not metrics.get("claims"):
        return []
    certify, rows = metrics["certify"], metrics["verdicts"]
    return [f"Both bases compare the same first {certify['points']} test points (attacked and certified). Certified "
            f"radius: {certify['methods'][0]}, L∞, input box [0, 1], misclassified points at 0. Attack radius: the "
            f"smallest eps of the PGD grid that broke the point under any seed (0 if misclassified clean); a point "
            f"never broken is capped at the grid's largest eps, so the empirical basis cannot see beyond it. "
            f"Verifier gap: mean attack radius - mean certified radius over the points the attack broke.",
            f"p-values: two-sided paired bootstrap ({verdict.BOOTSTRAP_SAMPLES} draws: twice the share of resampled "
            f"mean differences on the far side of 0), Holm-corrected across the {len(rows)} claims (pairs x bases) "
            f"of this report at family-wise level {verdict.FAMILY_LEVEL:g}.",
            f"The verdict does not cover training randomness: every model was trained once "
            f"(training seed {metrics['provenance']['seeds']['training']})."]


def render(config, metrics, plot_files):
    """Writes report.md and a self-contained report.html (plots embedded as base64 PNG)."""
    eps = (metrics.get("certify") or {}).get("eps")
    title = f"swtf study: {metrics['dataset']}"
    verdict_lines = [c["sentence"] for c in metrics.get("claims", [])] or [
        "No verdict yet: the certification stage has not run."]
    verdict_notes = _verdict_notes(metrics)
    header, rows = _model_table(metrics)
    robustness = _robustness_tables(metrics)
    notes = [f"Certified radii and certified accuracy are on the first {metrics['certify']['points']} test points "
             f"(method {metrics['certify']['methods'][0]}, L∞, input box [0, 1]); misclassified points count as "
             f"radius 0; certified accuracy is at eps={eps:g}." if metrics.get("certify") else ""]
    refused = (metrics.get("certify") or {}).get("not_certifiable", {})
    notes += [f"{name} is not certifiable: {reason}" for name, reason in refused.items()]
    flags = metrics["provenance"]["flags"]
    flag_text = {mode: "\n".join(f"--{k}={v}" for k, v in values.items()) for mode, values in flags.items()}
    md = [f"# {title}", "", "## Verdict", ""] + [f"- {line}" for line in verdict_lines] + [""] + verdict_notes + [
        "", "## Models", ""]
    for teacher, t_header, t_rows in robustness:
        md += [f"### {teacher} and its students", "", _markdown_table(t_header, t_rows), ""]
    md += ["### All models", "", _markdown_table(header, rows), ""] + [n for n in notes if n] + [""]
    md += ["## Provenance", ""] + [f"- {line}" for line in _provenance_lines(metrics)] + [""]
    for mode, text in flag_text.items():
        md += [f"Effective flags of --mode={mode}:", "", "```", text, "```", ""]
    for plot_title, path, caption in plot_files:
        md += [f"## {plot_title}", "", f"![{plot_title}](plots/{os.path.basename(path)})", ""]
        md += [caption, ""] if caption else []
    io.write_text(os.path.join(config.run_dir, "report.md"), "\n".join(md))

    figures = []
    for plot_title, path, caption in plot_files:
        with open(path, "rb") as f:
            encoded = base64.b64encode(f.read()).decode("ascii")
        figures.append(f"<figure><img alt='{html.escape(plot_title)}' src='data:image/png;base64,{encoded}'>"
                       f"<figcaption><b>{html.escape(plot_title)}</b> {html.escape(caption)}</figcaption></figure>")
    tables = "".join(f"<h3>{html.escape(teacher)} and its students</h3>{_html_table(t_header, t_rows)}"
                     for teacher, t_header, t_rows in robustness)
    flag_blocks = "".join(f"<details><summary>Effective flags of --mode={html.escape(mode)}</summary>"
                          f"<pre>{html.escape(text)}</pre></details>" for mode, text in flag_text.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;font-size:0.9em}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}img{{max-width:100%}}
.verdict li{{margin:0.5em 0}}</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>Verdict</h2><ul class="verdict">{''.join(f'<li>{html.escape(v)}</li>' for v in verdict_lines)}</ul>
{''.join(f'<p>{html.escape(n)}</p>' for n in verdict_notes)}
<h2>Models</h2>{tables}<h3>All models</h3>{_html_table(header, rows)}
{''.join(f'<p>{html.escape(n)}</p>' for n in notes if n)}
<h2>Provenance</h2><ul>{''.join(f'<li>{html.escape(line)}</li>' for line in _provenance_lines(metrics))}</ul>
{flag_blocks}
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
