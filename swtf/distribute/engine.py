"""Runs a mode's units of work (shards, sweep members) in this process or as Ray tasks, results in order.

A unit of work is a module-level function and its arguments: paths and settings, never live models, so the
same call runs here or on a Ray worker that re-loads the models from the run directory.
"""

import dataclasses
import os


def portable_config(config):
    """`config` with absolute run directory, data folder and npz path, as a task on another node needs them."""
    dataset = config.dataset
    if dataset.startswith("npz:"):
        dataset = "npz:" + os.path.abspath(dataset[4:])
    return dataclasses.replace(config, dataset=dataset, run_dir=os.path.abspath(config.run_dir),
                               data_dir=os.path.abspath(config.data_dir) if config.data_dir else None)


def run_tasks(function, arg_tuples, options, on_result=None):
    """[function(*args) for args in arg_tuples], in this process or on Ray per `options` (`DistributeOptions`).

    `on_result(position, result)` is called as each unit finishes, so finished shards can be written before
    the others end.
    """
    arg_tuples = list(arg_tuples)
    if options.engine == "ray":
        from swtf.distribute import ray_engine

        return ray_engine.run_tasks(function, arg_tuples, address=options.ray_address,
                                    max_retries=options.max_retries, on_result=on_result)
    results = []
    for position, args in enumerate(arg_tuples):
        results.append(function(*args))
        if on_result is not None:
            on_result(position, results[-1])
    return results
