"""Ray tasks: a function run on each argument tuple on a Ray cluster, resubmitted when a worker dies.

Shared filesystem: tasks receive paths (the run directory, model files, the data folder), never Keras
models, and re-load what they need from them, so every node of the cluster must see the run directory
under the same absolute path (run from a shared folder such as NFS; `engine.portable_config` makes the
paths absolute). Workers must run the same Python environment with swtf installed.
"""

import contextlib
import importlib.util

from swtf.errors import SwtfError

INSTALL = "pip install 'swtf[ray]' (or pip install ray)"
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}


def require_ray():
    """Refuses, in one line, the Ray engine where Ray is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise SwtfError(f"--engine=ray needs Ray, which is not installed: {INSTALL}")


def _import_ray():
    require_ray()
    import ray

    return ray


@contextlib.contextmanager
def cluster(address):
    """Yields `ray`, connected to the cluster at `address`: auto, host:port, ray://..., or local (a new one).

    An already initialised Ray (a test's or a benchmark's cluster) is used as it is and left running; a
    connection or local cluster opened here is closed on exit.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    local = {"include_dashboard": False} if address == "local" else {}
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", **local)
    except (ConnectionError, ValueError) as err:
        raise SwtfError(f"cannot reach a Ray cluster at --ray_address={address} ({str(err).splitlines()[0]}); "
                        f"start one with `ray start --head` or pass --ray_address=local") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _raise_task_error(ray, err):
    """A task's `SwtfError` becomes the same one-line error here; a worker that kept dying says so."""
    if isinstance(err, ray.exceptions.RayTaskError) and isinstance(err.cause, SwtfError):
        raise SwtfError(str(err.cause)) from None
    if isinstance(err, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError)):
        raise SwtfError(f"a Ray worker died and the task failed after its retries ({type(err).__name__}); see the "
                        f"Ray logs (/tmp/ray/session_latest/logs) or raise --ray_max_retries") from None
    raise err


def run_tasks(function, arg_tuples, *, address, max_retries, on_result=None):
    """[function(*args) for args in arg_tuples] as Ray tasks (one CPU each), in order.

    `on_result(position, result)` is called on this process as each task finishes, in finishing order.
    """
    with cluster(address) as ray:
        remote = ray.remote(function).options(num_cpus=1, max_retries=max_retries,
                                              runtime_env={"env_vars": WORKER_ENV})
        refs = [remote.remote(*args) for args in arg_tuples]
        positions = {ref: position for position, ref in enumerate(refs)}
        results, pending = [None] * len(refs), list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as err:
                for ref in pending:
                    ray.cancel(ref)
                _raise_task_error(ray, err)
            results[positions[done[0]]] = result
            if on_result is not None:
                on_result(positions[done[0]], result)
        return results
