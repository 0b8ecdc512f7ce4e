"""The options of work beyond one process (shards, the engine that runs them, tf.distribute strategies), from
their flags (defined in `swtf.cli_flags`).

Imported by the modes that shard their work (certify, attack, distill's sweep) and by the train mode
(`--strategy`). Flag values objects without these flags (a test's namespace) get the single-process
defaults.
"""

import dataclasses

from swtf import cli_flags  # noqa: F401  (defines the flags this module reads)
from swtf.distribute.shards import check_shard
from swtf.errors import SwtfError

ENGINES = ("inprocess", "ray")
STRATEGIES = ("default", "mirrored", "multi_worker")


@dataclasses.dataclass(frozen=True)
class DistributeOptions:
    """Which shards to run, and where: `shard_index` None runs all `num_shards`."""

    num_shards: int = 1
    shard_index: int = None
    engine: str = "inprocess"
    ray_address: str = "auto"
    max_retries: int = 3

    @property
    def indices(self):
        """The shard indices this command runs."""
        return (self.shard_index,) if self.shard_index is not None else tuple(range(self.num_shards))


def _check_ray_address(address):
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, sep, port = address.rpartition(":")
    if not (sep and host and port.isdigit()):
        raise SwtfError(f"--ray_address must be auto, local or host:port (e.g. 10.0.0.5:6379), got {address!r}")


def options_from_flags(fv):
    """Validates the shard and engine flags into `DistributeOptions` (one-line `SwtfError` on a bad value)."""
    defaults = DistributeOptions()
    values = {name: getattr(fv, flag, getattr(defaults, name)) for name, flag in (
        ("num_shards", "num_shards"), ("shard_index", "shard_index"), ("engine", "engine"),
        ("ray_address", "ray_address"), ("max_retries", "ray_max_retries"))}
    check_shard(values["num_shards"], values["shard_index"])
    if values["engine"] not in ENGINES:
        raise SwtfError(f"--engine must be one of {', '.join(ENGINES)}, got {values['engine']!r}")
    if values["max_retries"] < 0:
        raise SwtfError(f"--ray_max_retries must be >= 0, got {values['max_retries']}")
    if values["engine"] == "ray":
        _check_ray_address(values["ray_address"])
        from swtf.distribute.ray_engine import require_ray

        require_ray()
    return DistributeOptions(**values)


def strategy_from_flags(fv):
    """The validated `--strategy` name ("default" where the flag is absent)."""
    name = getattr(fv, "strategy", "default")
    if name not in STRATEGIES:
        raise SwtfError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    return name
