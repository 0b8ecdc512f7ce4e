"""Shards, shard files and the distribute flags: partitions checked against independent splits."""

import os
import time
import types

import numpy as np
import pytest

from swtf.distribute import flags as distribute_flags
from swtf.distribute import ray_engine, records, sharded, shards
from swtf.errors import SwtfError
from swtf.modes import attack as attack_mode


@pytest.mark.parametrize("num_points,num_shards", [(20, 2), (23, 4), (3, 5), (1, 1), (100, 7)])
def test_point_ranges_are_numpys_array_split(num_points, num_shards):
    expected = np.array_split(np.arange(num_points), num_shards)
    for index, part in enumerate(expected):
        start, stop = shards.point_range(num_points, num_shards, index)
        assert list(range(start, stop)) == part.tolist()


def test_strided_members_interleave_back_in_order():
    items = [f"member{i}" for i in range(11)]
    parts = [shards.strided(items, 3, index) for index in range(3)]
    assert parts[1] == ["member1", "member4", "member7", "member10"]
    assert sorted(sum(parts, [])) == sorted(items)
    assert shards.interleave(parts) == items
    assert shards.interleave([shards.strided(items[:2], 4, i) for i in range(4)]) == items[:2]  # empty shards


@pytest.mark.parametrize("num_points,batch_size,num_shards", [(40, 10, 2), (45, 10, 3), (200, 256, 2), (7, 2, 5)])
def test_attack_shards_are_whole_batches_covering_every_point_once(num_points, batch_size, num_shards):
    ranges = [attack_mode.shard_points(num_points, batch_size, num_shards, i) for i in range(num_shards)]
    assert sum((list(range(a, b)) for a, b in ranges), []) == list(range(num_points))
    assert all(a % batch_size == 0 for a, b in ranges if b > a)
    sizes = [-(-(b - a) // batch_size) for a, b in ranges]
    assert max(sizes) - min(sizes) <= 1  # batches spread evenly


@pytest.mark.parametrize("num_shards,index,fragment", [(0, None, "--num_shards"), (2, 2, "--shard_index"),
                                                        (2, -1, "--shard_index")])
def test_bad_shards_are_one_line_errors(num_shards, index, fragment):
    with pytest.raises(SwtfError, match=fragment) as err:
        shards.point_range(10, num_shards, index if index is not None else 0)
    assert "\n" not in str(err.value)


def flag_values(**overrides):
    values = dict(num_shards=1, shard_index=None, engine="inprocess", ray_address="auto", ray_max_retries=3)
    return types.SimpleNamespace(**{**values, **overrides})


def test_distribute_options_run_one_or_every_shard():
    assert distribute_flags.options_from_flags(flag_values(num_shards=3)).indices == (0, 1, 2)
    assert distribute_flags.options_from_flags(flag_values(num_shards=3, shard_index=1)).indices == (1,)
    assert distribute_flags.options_from_flags(types.SimpleNamespace()).indices == (0,)  # flags not defined
    with pytest.raises(SwtfError, match="--ray_address must be auto, local or host:port"):
        distribute_flags.options_from_flags(flag_values(engine="ray", ray_address="nowhere"))
    with pytest.raises(SwtfError, match="--ray_max_retries"):
        distribute_flags.options_from_flags(flag_values(ray_max_retries=-1))


def test_ray_engine_without_ray_is_one_line(monkeypatch):
    monkeypatch.setattr(ray_engine.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SwtfError, match=r"--engine=ray needs Ray, which is not installed: pip install") as err:
        distribute_flags.options_from_flags(flag_values(engine="ray", ray_address="local"))
    assert "\n" not in str(err.value)


def test_complete_sets_need_every_shard_with_equal_settings(tmp_path):
    folder = str(tmp_path)
    settings = {"eps": 0.1, "models": [("a", "digest")]}
    records.write_shard(folder, 1, 3, settings, {"rows": [1]})
    records.write_shard(folder, 0, 3, settings, {"rows": [0]})
    records.write_shard(folder, 2, 3, {"eps": 0.2, "models": [("a", "digest")]}, {"rows": ["stale"]})
    assert records.complete_set(folder, 3, settings) is None
    assert records.missing_shards(folder, 3, settings) == [2]
    records.write_shard(folder, 2, 3, settings, {"rows": [2]})
    assert records.complete_set(folder, 3, settings) == [{"rows": [0]}, {"rows": [1]}, {"rows": [2]}]
    assert records.complete_set(folder, 2, settings) is None


def test_merge_pending_merges_only_a_set_newer_than_the_output(tmp_path):
    folder = str(tmp_path)
    merged = []
    for index in range(2):
        records.write_shard(os.path.join(folder, "shards"), index, 2, {"k": 1}, index)
    assert sharded.merge_pending(folder, "out.json", lambda s, r: merged.append(r))
    assert merged == [[0, 1]]
    later = time.time() + 10
    with open(os.path.join(folder, "out.json"), "w") as f:
        f.write("{}")
    os.utime(os.path.join(folder, "out.json"), (later, later))
    assert not sharded.merge_pending(folder, "out.json", lambda s, r: merged.append(r))
    assert merged == [[0, 1]]


def test_content_digest_changes_with_the_file(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"weights-1")
    first = records.content_digest(str(path))
    path.write_bytes(b"weights-2")
    assert records.content_digest(str(path)) != first
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"graph")
    assert records.content_digest(str(folder)) != records.content_digest(str(path))


def test_pgd_on_slices_with_first_index_reproduces_the_whole_set():
    """Slices cut inside and across attack batches get the random starts of the whole set's batches."""
    import swtf.attack
    from swtf import models
    from swtf.data import load_dataset

    data = load_dataset("digits", seed=0)
    x, y = data.x_test[:40], data.y_test[:40]
    model = models.build("snn", data.input_shape, 10, seed=0, width=16)
    kwargs = dict(eps=0.1, steps=3, restarts=2, seed=3, batch_size=7)
    whole = swtf.attack.pgd(model, x, y, **kwargs)
    cuts = ((0, 11), (11, 13), (13, 30), (30, 40))
    sliced = np.concatenate([swtf.attack.pgd(model, x[a:b], y[a:b], first_index=a, **kwargs) for a, b in cuts])
    np.testing.assert_array_equal(sliced, whole)
    naive = np.concatenate([swtf.attack.pgd(model, x[a:b], y[a:b], **kwargs) for a, b in cuts])
    assert not np.array_equal(naive, whole)  # without first_index the slices draw other starts
