"""The stage ledger: which stages of a run are finished, and with which settings.

A stage is done when its marker `<run_dir>/stages/<stage>.json` exists and records the same key: a hash of
the stage's own settings and of the keys of the stages it reads. The marker is written atomically and only
after every artifact of the stage, so a run killed mid-stage leaves no marker and the stage runs again;
a changed setting changes the key of that stage and of everything downstream.
"""

import hashlib
import json
import os
import time

from swtf import io


def stage_key(settings, upstream_keys=()):
    """A short stable hash of JSON-serialisable `settings` and the keys of upstream stages."""
    payload = io.to_json({"settings": settings, "upstream": list(upstream_keys)})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class StageLedger:
    """Reads and writes the finished-stage markers of one run directory."""

    def __init__(self, run_dir):
        self.folder = os.path.join(run_dir, "stages")

    def _path(self, stage):
        return os.path.join(self.folder, f"{stage}.json")

    def finished(self, stage, key):
        """The marker of `stage` if it finished with `key`, else None."""
        try:
            with open(self._path(stage), encoding="utf-8") as f:
                marker = json.load(f)
        except (OSError, ValueError):
            return None
        return marker if marker.get("key") == key else None

    def mark_finished(self, stage, key, summary, seconds):
        io.write_json(self._path(stage), {"stage": stage, "key": key, "summary": summary,
                                          "seconds": round(seconds, 2), "finished_at": time.time()})

    def summaries(self):
        """{stage: summary} of every finished stage, whatever its key."""
        result = {}
        if os.path.isdir(self.folder):
            for name in sorted(os.listdir(self.folder)):
                if name.endswith(".json"):
                    with open(os.path.join(self.folder, name), encoding="utf-8") as f:
                        marker = json.load(f)
                    result[marker["stage"]] = marker
        return result
