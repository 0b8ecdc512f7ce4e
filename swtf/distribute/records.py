"""Shard result files: `<folder>/shard-<i>-of-<K>.json`, each holding the settings that produced it.

A set of shards is merged only when all K files are present and were computed with the same settings
(the mode's options, the data, and a digest of every model file), so shards of an older command, or of
a model retrained since, are never mixed into a merge.
"""

import glob
import hashlib
import json
import os
import re

from swtf import io

_NAME = re.compile(r"shard-(\d+)-of-(\d+)\.json$")


def shard_path(folder, index, num_shards):
    return os.path.join(folder, f"shard-{index}-of-{num_shards}.json")


def normalised(settings):
    """`settings` as it reads back from JSON (tuples become lists), so written and new settings compare."""
    return json.loads(io.to_json(settings))


def content_digest(path):
    """SHA-256 of a model file, or of every file of a model folder (SavedModel) in name order."""
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(root, name) for root, _, names in os.walk(path) for name in names)
    digest = hashlib.sha256()
    for name in files:
        digest.update(os.path.relpath(name, path).encode())
        with open(name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def write_shard(folder, index, num_shards, settings, result):
    """Writes shard `index`'s result with its settings; returns the path."""
    path = shard_path(folder, index, num_shards)
    io.write_json(path, {"shard": index, "num_shards": num_shards, "settings": settings, "result": result})
    return path


def complete_sets(folder):
    """[(settings, [result of shard 0, 1, ..., K-1], newest mtime)] for each complete set of shards in `folder`."""
    groups = {}
    for path in glob.glob(os.path.join(folder, "shard-*-of-*.json")):
        match = _NAME.search(os.path.basename(path))
        if not match:
            continue
        record = io.read_json(path)
        key = (int(match.group(2)), io.to_json(record["settings"]))
        groups.setdefault(key, {})[int(match.group(1))] = (record, os.path.getmtime(path))
    sets = []
    for (num_shards, _), shards in sorted(groups.items()):
        if set(shards) == set(range(num_shards)):
            ordered = [shards[i] for i in range(num_shards)]
            sets.append((ordered[0][0]["settings"], [record["result"] for record, _ in ordered],
                         max(mtime for _, mtime in ordered)))
    return sets


def complete_set(folder, num_shards, settings):
    """The results of shards 0..K-1 computed with `settings`, or None while one is missing or stale."""
    wanted = normalised(settings)
    for found, results, _ in complete_sets(folder):
        if found == wanted and len(results) == num_shards:
            return results
    return None


def missing_shards(folder, num_shards, settings):
    """Indices of the shards not yet written with `settings`."""
    wanted = normalised(settings)
    missing = []
    for index in range(num_shards):
        path = shard_path(folder, index, num_shards)
        if not os.path.isfile(path) or io.read_json(path)["settings"] != wanted:
            missing.append(index)
    return missing
