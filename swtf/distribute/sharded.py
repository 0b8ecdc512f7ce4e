"""A mode's job as shards: run this command's shards, write one result file each, merge a complete set.

With one shard (the default) the job runs and is merged in memory, writing exactly what an unsharded run
always wrote. With K shards each finished shard is written to `<folder>/shards/shard-<i>-of-<K>.json`;
whichever command writes the last missing shard merges the set, and `--mode=report` merges any complete
set newer than the merged output.
"""

import os

from swtf.distribute import engine, records


def _one(parts):
    (result,) = parts
    return result


def run_sharded(label, function, units, options, *, folder, settings, merge, join=_one):
    """Runs the shards `options.indices` of a job of `options.num_shards` shards; merges when complete.

    Args:
      label: the mode's name, for progress lines.
      function: module-level function of one unit of work (picklable, so Ray can run it).
      units: `units(index)` -> the argument tuples of `function` that make up shard `index`.
      options: `DistributeOptions` (shards to run, engine).
      folder: the mode's output folder; shard files go to its `shards/` sub-folder.
      settings: JSON-able settings the results depend on (only shards with equal settings are merged).
      merge: `merge(results)` writes the outputs from the shards' results, in shard order.
      join: `join(unit results of one shard, in order)` -> the shard's result (default: its one unit's).
    """
    num_shards = options.num_shards
    shard_folder = os.path.join(folder, "shards")
    plan = {index: list(units(index)) for index in options.indices}
    parts = {index: [None] * len(unit_args) for index, unit_args in plan.items()}
    left = {index: len(unit_args) for index, unit_args in plan.items()}
    order = [(index, slot) for index, unit_args in plan.items() for slot in range(len(unit_args))]
    finished = {}

    def finish(index):
        finished[index] = join(parts[index])
        if num_shards > 1:
            path = records.write_shard(shard_folder, index, num_shards, settings, finished[index])
            print(f"{label}: shard {index + 1}/{num_shards} -> {path}")

    def on_result(position, result):
        index, slot = order[position]
        parts[index][slot] = result
        left[index] -= 1
        if not left[index]:
            finish(index)

    for index in [i for i, count in left.items() if not count]:
        finish(index)
    engine.run_tasks(function, [args for index in plan for args in plan[index]], options, on_result)
    if num_shards == 1:
        merge([finished[0]])
        return
    results = records.complete_set(shard_folder, num_shards, settings)
    if results is None:
        missing = records.missing_shards(shard_folder, num_shards, settings)
        print(f"{label}: waiting for shards {', '.join(map(str, missing))} of {num_shards} (--shard_index); the "
              f"command that writes the last one merges them, as does --mode=report")
        return
    merge(results)


def merge_pending(folder, output, merge):
    """Merges the newest complete set of shards under `<folder>/shards` if it is newer than `<folder>/<output>`.

    `merge(settings, results)` writes the outputs. Returns whether a set was merged.
    """
    output_path = os.path.join(folder, output)
    done = os.path.getmtime(output_path) if os.path.exists(output_path) else float("-inf")
    complete = [entry for entry in records.complete_sets(os.path.join(folder, "shards")) if entry[2] > done]
    if not complete:
        return False
    settings, results, _ = max(complete, key=lambda entry: entry[2])
    merge(settings, results)
    return True
