"""Work beyond one process: shards of a mode's points or sweep members, their merge, the Ray engine,
and tf.distribute strategies for the training loop.

The implementation lives in the modules beside this one; this file only re-exports the public names.
"""

from swtf.distribute.engine import portable_config, run_tasks
from swtf.distribute.shards import interleave, point_range, strided

__all__ = ["interleave", "point_range", "portable_config", "run_tasks", "strided"]
