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
from swtf.study.stages import artifact_path, read_seeds


def _read(config, name, suffix=""):
    path = artifact_path(config, name, suffix)
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


def _pair_keys(records, pairs):
    """{(teacher role, student slot): (teacher, student)}: the slot is "selected" for a teacher's
    validation-best distilled student, else the student's role, so the pairs of every training seed line up."""
    keyed, seen = {}, set()
    for teacher, student in pairs:
        role = records[teacher]["metrics"].get("role")
        slot = "selected" if teacher not in seen else records[student]["metrics"].get("role")
        seen.add(teacher)
        keyed[(role, slot)] = (teacher, student)
    return keyed


def _mean_summary(summaries):
    """One summary of the same model slot over training seeds: the mean of every number (the verifier gap over
    the seeds where it is defined)."""
    if len(summaries) == 1:
        return summaries[0]
    found = {}
    for key, value in summaries[0].items():
        values = [s.get(key) for s in summaries if s.get(key) is not None]
        found[key] = (None if not values else float(np.mean(values)) if key != "points" else value)
    return found


def _attack_phrase(attack):
    """What the empirical basis's attack radius comes from, e.g. "strongest of PGD-20 and APGD-100, 2 restarts
    x 3 seeds"."""
    if not attack:
        return "PGD"
    seeds = len(next(iter(attack["curves"].values()), {}).get("seeds", []))
    runs_text = f"{attack.get('restarts')} restarts x {seeds} seeds"
    specs = attack.get("attacks")
    if not specs:
        return f"PGD-{attack.get('steps')}, {runs_text}"
    names = " and ".join(f"{a['attack'].upper()}-{a['steps']}" for a in specs)
    return (f"strongest of {names}, {runs_text}" if len(specs) > 1 else f"{names}, {runs_text}")


def _verdicts(config, records, per_seed):
    """Per-model summaries, one verdict row per pair and basis (Holm-corrected together), one claim per pair.

    `per_seed`: [(training seed, suffix, certify, attack)] of every training seed the study ran. With one seed
    each basis compares the pair's per-point radii; with several, a pair is the same slot (the teacher and its
    selected, pruned, re-trained or straight student) in every seed, and the bootstrap is hierarchical over
    the seeds' [seed][point] radii. The claim names the first seed's models."""
    summaries, keyed, values = {}, [], []
    for _, _, certify, attack in per_seed:
        eps = certify["eps"]
        radii = _radii(certify)
        under_attack = _attack_radii(certify, attack)
        for name in radii:
            summaries[name] = verdict.model_summary(radii[name], eps, certify["correct"][name],
                                                    records[name]["params"])
            if name in under_attack:
                summaries[name].update(verdict.empirical_summary(radii[name], *under_attack[name]))
        values.append({"certified": radii,
                       "empirical": {n: np.minimum(r, grid_max) for n, (r, _, grid_max) in under_attack.items()}})
        keyed.append(_pair_keys(records, _pairs(records, list(radii))))
    first_certify, first_attack = per_seed[0][2], per_seed[0][3]
    eps, method = first_certify["eps"], first_certify["methods"][0]
    keys = [key for key in keyed[0] if all(key in k for k in keyed)]
    several = len(per_seed) > 1
    rows, pair_summaries = [], {}
    for key in keys:
        names = [k[key] for k in keyed]
        teacher, student = names[0]
        pair_summaries[key] = {teacher: _mean_summary([summaries[t] for t, _ in names]),
                               student: _mean_summary([summaries[s] for _, s in names])}
        for basis in verdict.BASES:
            if not all(t in v[basis] and s in v[basis] for (t, s), v in zip(names, values)):
                continue
            t_values = np.array([v[basis][t] for (t, _), v in zip(names, values)])
            s_values = np.array([v[basis][s] for (_, s), v in zip(names, values)])
            if not several:
                t_values, s_values = t_values[0], s_values[0]
            row = {"teacher": teacher, "student": student, **verdict.compare(
                pair_summaries[key][teacher], pair_summaries[key][student], t_values, s_values, basis=basis,
                seed=config.seed)}
            if several:
                row["per_seed"] = [{"training_seed": seed, "teacher": t, "student": s}
                                   for (seed, *_), (t, s) in zip(per_seed, names)]
            rows.append(row)
    verdict.decide(rows)
    claims = []
    for key in keys:
        teacher, student = keyed[0][key]
        pair_rows = [r for r in rows if (r["teacher"], r["student"]) == (teacher, student)]
        answer, text = verdict.sentence(teacher, student, pair_rows, pair_summaries[key], eps, method=method,
                                        attack=_attack_phrase(first_attack), seeds=len(per_seed))
        claim = {"teacher": teacher, "student": student, "answer": answer, "sentence": text}
        if several:
            claim["per_seed"] = [{"training_seed": seed, "teacher": k[key][0], "student": k[key][1]}
                                 for (seed, *_), k in zip(per_seed, keyed)]
        claims.append(claim)
        for row in pair_rows:
            row.update(sentence=text, teacher_summary=pair_summaries[key][teacher],
                       student_summary=pair_summaries[key][student])
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
    training = metrics.get("training_seeds") or [int(study_flags.get("seed", metrics["seed"]))]
    return {"version": swtf.__version__, "command": " ".join(sys.argv), "flags": flags,
            "seeds": {"training": training, "attack": curve.get("seeds"), "bootstrap": config.seed},
            "settings": {"attack": {**{k: attack.get(k) for k in ("attack", "norm", "steps", "restarts")},
                                    "attacks": attack.get("attacks") or (
                                        [{k: attack.get(k) for k in ("attack", "steps", "restarts")}]
                                        if attack else None),
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
    seeds = read_seeds(config)
    for name in ("students", "prune", "attack", "certify"):  # the first training seed's (no suffix)
        metrics[name] = _read(config, f"{name}.json")
    per_seed = [(seed, suffix, _read(config, "certify.json", suffix), _read(config, "attack.json", suffix))
                for seed, suffix in seeds]
    per_seed = [entry for entry in per_seed if entry[2] and entry[2].get("correct")]
    if seeds[0][0] is not None:
        metrics["training_seeds"] = [seed for seed, *_ in per_seed] or [seeds[0][0]]
    if per_seed and per_seed[0][1] == "":
        metrics["certified"], metrics["verdicts"], metrics["claims"] = _verdicts(config, records, per_seed)
        if len(per_seed) > 1:
            metrics["certified_over_seeds"] = _over_seeds(records, metrics["certified"], per_seed)
    metrics["provenance"] = provenance(config, metrics)
    return metrics


def _slot(records, name):
    """What a study model is in every training seed: its teacher's role and its own role, and for a
    distilled student its architecture and method (the selected temperature may differ between seeds)."""
    m = records[name]["metrics"]
    teacher = records[m["teacher"]]["metrics"].get("role") if m.get("teacher") in records else m.get("role")
    return (teacher, m.get("role")) + ((m.get("student"), m.get("method")) if m.get("role") == "student" else ())


def _over_seeds(records, certified, per_seed):
    """Per study model slot (`_slot`), its summaries' mean, sd (n - 1), min and max over training seeds, the
    seeds it has and its name in each; the slot is named by the first seed's model."""
    slots = {}
    for seed, suffix, certify, _ in per_seed:
        for name in certify["correct"]:
            slots.setdefault(_slot(records, name), []).append((seed, name, name[:len(name) - len(suffix)]))
    found = {}
    for slot, members in slots.items():
        stats = {}
        for key in ("clean_accuracy", "certified_accuracy", "empirical_robust_accuracy", "mean_radius",
                    "mean_attack_radius", "verifier_gap", "params"):
            values = [certified[n][key] for _, n, _ in members if certified[n].get(key) is not None]
            if values:
                stats[key] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1
                              else 0.0, "min": float(np.min(values)), "max": float(np.max(values)), "n": len(values)}
        found[members[0][1]] = {"training_seeds": [s for s, _, _ in members],
                                "names": [n for _, n, _ in members], "names_without_seed": [b for *_, b in members],
                                "role": records[members[0][1]]["metrics"].get("role"),
                                "teacher_role": slot[0], **stats}
    return found


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
                 f"{_describe_attacks(attack)}; certified by {method}")
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


def _describe_attacks(attack):
    """"PGD, 20 steps x 2 restarts, ..." for one attack; "strongest per point of PGD (...) and APGD (...)" for
    the study's attacks."""
    specs = attack.get("attacks")
    if not specs or len(specs) == 1:
        spec = (specs or [attack])[0]
        return describe_attack(spec["attack"], _attack_settings({**attack, **spec}))
    return "strongest per point of " + " and ".join(
        f"{spec['attack'].upper()} ({describe_attack(spec['attack'], _attack_settings(spec)).split(', ', 1)[1]})"
        for spec in specs)


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
        attack = metrics["attack"]
        points = next(iter(attack["curves"].values()))["points"]
        by_attack = attack.get("by_attack") or {attack["attack"]: attack["curves"]}
        specs = {spec["attack"]: spec for spec in attack.get("attacks") or [attack]}
        for name in sorted(by_attack, key=lambda a: list(specs).index(a) if a in specs else len(specs)):
            curves = by_attack[name]
            path = os.path.join(folder, "attack_curves.png" if name == "pgd" else f"attack_curves_{name}.png")
            plot_robustness_curves(curves, path, references=references,
                                   settings=_attack_settings({**attack, **specs.get(name, {})}),
                                   title=f"Accuracy under attack, {metrics['dataset']}, {points} test points")
            made.append((f"Adversarial: accuracy under {name.upper()} against eps", path, ""))
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


def _spread(stat, digits):
    """"0.512 ± 0.013" (mean ± sd over training seeds) from an `_over_seeds` statistic; "-" where missing."""
    return "-" if not stat else f"{stat['mean']:.{digits}f} ± {stat['sd']:.{digits}f}"


def _params(stat):
    """Parameters over training seeds: one number where every seed's model has it, else "min-max"."""
    if not stat:
        return "-"
    return f"{stat['min']:,.0f}" if stat["min"] == stat["max"] else f"{stat['min']:,.0f}-{stat['max']:,.0f}"


def _seeds_text(seeds):
    return f"{len(seeds)} training seeds ({', '.join(str(s) for s in seeds)})"


def _model_table_over_seeds(metrics, suffixes):
    """The models of the run's training seeds, one row per model name without its seed suffix: its numbers as
    mean ± sd over the seeds it was trained with, and how many."""
    certified = metrics.get("certified", {})
    groups = {}
    for name in metrics["models"]:
        base = next((name[:-len(s)] for s in suffixes if s and name.endswith(s)), name)
        groups.setdefault(base, []).append(name)
    points = (metrics.get("certify") or {}).get("points")
    header = ["model", "role", "architecture", "parameters", "test accuracy (whole test set)",
              f"mean radius ({points} points)", f"certified accuracy ({points} points)", "seeds"]

    def stat(values):
        values = [v for v in values if v is not None]
        return None if not values else {"mean": float(np.mean(values)),
                                         "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}

    rows = []
    for base, names in groups.items():
        m = metrics["models"][names[0]]
        rows.append([base, m.get("role", ""), m["architecture"], f"{m['params']:,}",
                     _spread(stat([metrics["models"][n].get("test_accuracy") for n in names]), 4),
                     _spread(stat([certified.get(n, {}).get("mean_radius") for n in names]), 4),
                     _spread(stat([certified.get(n, {}).get("certified_accuracy") for n in names]), 3),
                     len(names)])
    return header, rows


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
    over = metrics.get("certified_over_seeds")
    if over:  # several training seeds: one row per model slot, mean ± sd over seeds
        tables = []
        for teacher in [n for n, o in over.items() if o["role"] in runs.TEACHER_ROLES]:
            members = [teacher] + [n for n, o in over.items()
                                   if o["teacher_role"] == over[teacher]["role"] and n != teacher]
            rows = [[" / ".join(dict.fromkeys(over[n]["names_without_seed"])),
                     over[n]["role"] or "", _params(over[n].get("params")),
                     _spread(over[n].get("clean_accuracy"), 3), _spread(over[n].get("certified_accuracy"), 3),
                     _spread(over[n].get("empirical_robust_accuracy"), 3), _spread(over[n].get("mean_radius"), 4),
                     _spread(over[n].get("mean_attack_radius"), 4), _spread(over[n].get("verifier_gap"), 4),
                     len(over[n]["training_seeds"])] for n in members]
            tables.append((teacher, header + ["seeds"], rows))
        return tables
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
            "attack: " + ", ".join([_describe_attacks(metrics["attack"])] if metrics.get("attack") else [])
            + "".join(f", {k} {v}" for k, v in settings["attack"].items()
                      if k not in ("attack", "steps", "restarts", "attacks")),
            "bounds: " + ", ".join(f"{k} {v}" for k, v in settings["certify"].items()),
            "verdict statistics: " + ", ".join(f"{k} {v}" for k, v in settings["bootstrap"].items())]


def _verdict_notes(metrics):
    """How to read the verdict: point set, statistics, what it does not cover."""
    if not metrics.get("claims"):
        return []
    certify, rows = metrics["certify"], metrics["verdicts"]
    attack = metrics.get("attack")
    runs_text = (f"{_describe_attacks(attack)}, over restart seeds {next(iter(attack['curves'].values()))['seeds']}"
                 if attack else "the attack")
    seeds = metrics["provenance"]["seeds"]["training"]
    resampling = ("paired bootstrap" if len(seeds) == 1 else
                  "hierarchical bootstrap over the training seeds, then the test points within each drawn seed")
    return [f"Both bases compare the same first {certify['points']} test points (attacked and certified). Certified "
            f"radius: {certify['methods'][0]}, L∞, input box [0, 1], misclassified points at 0. Attack radius: the "
            f"smallest eps of the grid at which some attack run broke the point ({runs_text}; 0 if misclassified "
            f"clean); a point never broken is capped at the grid's largest eps, so the empirical basis cannot see "
            f"beyond it. Verifier gap: mean attack radius - mean certified radius over the points the attack broke.",
            f"p-values: two-sided {resampling} ({verdict.BOOTSTRAP_SAMPLES} draws: twice the share of resampled "
            f"mean differences on the far side of 0), Holm-corrected across the {len(rows)} claims (pairs x bases) "
            f"of this report at family-wise level {verdict.FAMILY_LEVEL:g}."]


def _training_note(metrics):
    """The sentence beside the verdict on training randomness: not covered with one training seed (and how to
    cover it), covered with several."""
    if not metrics.get("claims"):
        return ""
    seeds = metrics["provenance"]["seeds"]["training"]
    if len(seeds) == 1:
        return (f"Training randomness: not covered. Every model was trained once (one training seed: {seeds[0]}), "
                f"so the verdict does not cover training randomness; rerun with --study_seeds=0,1,2 to train every "
                f"model once per seed and bootstrap over seeds and test points.")
    return (f"Training randomness: covered. Every model was trained with each of {_seeds_text(seeds)}, and "
            f"every interval and p-value comes from a hierarchical bootstrap over the seeds, then the test points.")


def render(config, metrics, plot_files):
    """Writes report.md and a self-contained report.html (plots embedded as base64 PNG)."""
    eps = (metrics.get("certify") or {}).get("eps")
    title = f"swtf study: {metrics['dataset']}"
    verdict_lines = [c["sentence"] for c in metrics.get("claims", [])] or [
        "No verdict yet: the certification stage has not run."]
    verdict_notes = _verdict_notes(metrics)
    training_note = _training_note(metrics)
    seeds = metrics["provenance"]["seeds"]["training"]
    several = bool(metrics.get("certified_over_seeds"))
    if several:
        header, rows = _model_table_over_seeds(metrics, [suffix for _, suffix in read_seeds(config)])
    else:
        header, rows = _model_table(metrics)
    robustness = _robustness_tables(metrics)
    seeds_note = (f"Every number below is the mean ± sd (n - 1) over {_seeds_text(seeds)}; 'seeds' counts the "
                  f"seeds a row has. The plots show the first seed's models." if several else "")
    robust_plots = [p for p in plot_files if os.path.basename(p[1]).startswith("robust_accuracy_")]
    other_plots = [p for p in plot_files if p not in robust_plots]
    notes = [f"Certified radii and certified accuracy are on the first {metrics['certify']['points']} test points "
             f"(method {metrics['certify']['methods'][0]}, L∞, input box [0, 1]); misclassified points count as "
             f"radius 0; certified accuracy is at eps={eps:g}." if metrics.get("certify") else ""]
    refused = (metrics.get("certify") or {}).get("not_certifiable", {})
    notes += [f"{name} is not certifiable: {reason}" for name, reason in refused.items()]
    flags = metrics["provenance"]["flags"]
    flag_text = {mode: "\n".join(f"--{k}={v}" for k, v in values.items()) for mode, values in flags.items()}
    md = [f"# {title}", "", "## Verdict", ""] + [f"- {line}" for line in verdict_lines] + [""]
    md += [f"**{training_note}**", ""] if training_note else []
    md += [n for note in verdict_notes for n in (note, "")]
    for plot_title, path, caption in robust_plots:  # directly under the verdict: what it rests on, at every eps
        md += [f"## {plot_title}", "", f"![{plot_title}](plots/{os.path.basename(path)})", ""]
        md += [caption, ""] if caption else []
    md += ["## Models", ""] + ([seeds_note, ""] if seeds_note else [])
    for teacher, t_header, t_rows in robustness:
        md += [f"### {teacher} and its students", "", _markdown_table(t_header, t_rows), ""]
    md += ["### All models", "", _markdown_table(header, rows), ""] + [n for n in notes if n] + [""]
    md += ["## Provenance", ""] + [f"- {line}" for line in _provenance_lines(metrics)] + [""]
    for mode, text in flag_text.items():
        md += [f"Effective flags of --mode={mode}:", "", "```", text, "```", ""]
    for plot_title, path, caption in other_plots:
        md += [f"## {plot_title}", "", f"![{plot_title}](plots/{os.path.basename(path)})", ""]
        md += [caption, ""] if caption else []
    io.write_text(os.path.join(config.run_dir, "report.md"), "\n".join(md))

    def figure(plot_title, path, caption):
        with open(path, "rb") as f:
            encoded = base64.b64encode(f.read()).decode("ascii")
        return (f"<figure><img alt='{html.escape(plot_title)}' src='data:image/png;base64,{encoded}'>"
                f"<figcaption><b>{html.escape(plot_title)}</b> {html.escape(caption)}</figcaption></figure>")

    figures = [figure(*p) for p in other_plots]
    robust_figures = "".join(figure(*p) for p in robust_plots)
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
{f'<p><b>{html.escape(training_note)}</b></p>' if training_note else ''}
{''.join(f'<p>{html.escape(n)}</p>' for n in verdict_notes)}
{robust_figures}
<h2>Models</h2>{f'<p>{html.escape(seeds_note)}</p>' if seeds_note else ''}{tables}
<h3>All models</h3>{_html_table(header, rows)}
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
