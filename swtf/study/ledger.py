"""The stage ledger: which stages of a run are finished, and with which settings.

A stage is done when its marker `<run_dir>/stages/<stage>.json` exists, records the same key (a hash of
the stage's own settings, of the keys of the stages it reads and of the SHA-256 of the model files they
wrote) and the model files the stage wrote still have the recorded SHA-256. The marker is written
atomically and only after every artifact of the stage, so a run killed mid-stage leaves no marker and the
stage runs again; a changed setting, or a model file replaced or damaged since, changes the key of every
stage that reads it.
"""

import hashlib
import os
import time

from swtf import io, runs
from swtf.distribute.records import content_digest
from swtf.errors import SwtfError


def stage_key(settings, upstream=()):
    """A short stable hash of JSON-serialisable `settings` and of what the stage reads from upstream stages."""
    payload = io.to_json({"settings": settings, "upstream": list(upstream)})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class StageLedger:
    """Reads and writes the finished-stage markers of one run directory."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.folder = os.path.join(run_dir, "stages")

    def _path(self, stage):
        return os.path.join(self.folder, f"{stage}.json")

    def model_digests(self, names):
        """{name: SHA-256 of the run's model file `name`, None if it is missing}."""
        digests = {}
        for name in names:
            path = runs.model_path(self.run_dir, name)
            digests[name] = content_digest(path) if os.path.isfile(path) else None
        return digests

    def finished(self, stage, key):
        """The marker of `stage` if it finished with `key` and its model files are unchanged, else None."""
        try:
            marker = io.read_json(self._path(stage))
        except SwtfError:  # no marker, or a damaged one: the stage runs (again)
            return None
        if marker.get("key") != key or self.model_digests(marker.get("models", {})) != marker.get("models", {}):
            return None
        return marker

    def mark_finished(self, stage, key, summary, seconds, models):
        """Records `stage` as finished with `key`; `models`: {name: SHA-256} of the model files it wrote."""
        io.write_json(self._path(stage), {"stage": stage, "key": key, "summary": summary, "models": models,
                                          "seconds": round(seconds, 2), "finished_at": time.time()})

    def summaries(self):
        """{stage: summary} of every finished stage, whatever its key."""
        result = {}
        if os.path.isdir(self.folder):
            for name in sorted(os.listdir(self.folder)):
                if name.endswith(".json") and not io.is_temporary(name):
                    marker = io.read_json(os.path.join(self.folder, name))
                    result[marker["stage"]] = marker
        return result
