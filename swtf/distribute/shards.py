"""Which part of a job shard `index` of `num_shards` does: a contiguous run of points or a stride of members.

Points (certify, attack) are split into `num_shards` contiguous runs whose lengths differ by at most one,
so concatenating the shards' per-point results in shard order gives the unsplit order back. Sweep members
are dealt out round-robin (member m goes to shard m mod K), which spreads the slow and the fast students
of a sweep over the shards; `interleave` puts their rows back in member order.
"""

from swtf.errors import SwtfError


def check_shard(num_shards, index=None):
    """Refuses, in one line, a shard count below 1 or an index outside [0, num_shards)."""
    if num_shards < 1:
        raise SwtfError(f"--num_shards must be >= 1, got {num_shards}")
    if index is not None and not 0 <= index < num_shards:
        raise SwtfError(f"--shard_index must be in [0, --num_shards={num_shards}), got {index}")


def point_range(num_points, num_shards, index):
    """(start, stop) of shard `index`'s contiguous run of the points 0..num_points-1.

    The first `num_points % num_shards` shards take one point more; a shard may be empty when there are
    fewer points than shards.
    """
    check_shard(num_shards, index)
    base, extra = divmod(num_points, num_shards)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


def strided(items, num_shards, index):
    """The items of shard `index`: items[index], items[index + K], ... (K = num_shards)."""
    check_shard(num_shards, index)
    return list(items)[index::num_shards]


def interleave(parts):
    """Inverse of `strided`: `parts[i]` is shard i's list; returns the items in their original order."""
    total = sum(len(part) for part in parts)
    merged = [None] * total
    for index, part in enumerate(parts):
        merged[index::len(parts)] = part
    return merged
