"""`--mode=report`: rebuilds the run's report (HTML, Markdown, plots, metrics.json) from its artifacts.

First merges any complete set of certify, attack or sweep shards newer than its merged outputs.
"""

from swtf.modes import attack, certify, distill
from swtf.report.build import build_report

SHARDED_MODES = {"certify": certify, "attack": attack, "distill": distill}


def run(config):
    for name, mode in SHARDED_MODES.items():
        if mode.merge_pending(config.run_dir):
            print(f"report: merged the {name} shards")
    metrics = build_report(config)
    for row in metrics.get("claims", []):
        print(f"verdict: {row['sentence']}")
    print(f"report: {config.run_dir}/report.html, report.md, metrics.json, plots/")
