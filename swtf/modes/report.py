"""`--mode=report`: rebuilds the run's report (HTML, Markdown, plots, metrics.json) from its artifacts."""

from swtf.report.build import build_report


def run(config):
    metrics = build_report(config)
    for row in metrics.get("verdicts", []):
        print(f"verdict: {row['sentence']}")
    print(f"report: {config.run_dir}/report.html, report.md, metrics.json, plots/")
