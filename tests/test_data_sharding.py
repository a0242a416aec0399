"""Each process's rows of the global batch: every example once a step, the global batches
the same for any number of processes; the data layout read off the mesh."""

import itertools

import jax
import numpy as np
import pytest

from hyperprompt import data, partitioning

LENGTHS = {"inputs": 24, "targets": 12}


def batches(shard, pack=False, skip=1, steps=3):
    registry = data.task_registry("synthetic_mtl")
    stream = data.train_batches("synthetic_mtl", registry, LENGTHS, 8, seed=3, skip=skip,
                                pack=pack, shard=shard)
    return list(itertools.islice(stream, steps))


@pytest.mark.parametrize("pack", [False, True])
def test_shards_put_together_are_the_one_process_batches(pack):
    whole = batches((0, 1), pack)
    parts = [batches((i, 4), pack) for i in range(4)]
    for step, batch in enumerate(whole):
        for key, value in batch.items():
            assert all(len(p[step][key]) == 2 for p in parts)
            np.testing.assert_array_equal(np.concatenate([p[step][key] for p in parts]), value)
    # different examples in each row of a step (no shard repeats another's)
    rows = [tuple(r) for r in np.concatenate([b["encoder_input_tokens"] for b in whole])]
    assert len(set(rows)) == len(rows)


def test_data_layout_of_one_process_is_the_whole_batch():
    layout = partitioning.data_layout(partitioning.make_mesh(2), 16)
    assert (layout.batch_size, layout.shard_id, layout.num_shards) == (16, 0, 1)
    sharded = partitioning.shard_batch({"x": np.arange(16)}, partitioning.make_mesh(2))
    assert sharded["x"].shape == (16,)
    np.testing.assert_array_equal(partitioning.gather(sharded["x"]), np.arange(16))


@pytest.mark.parametrize("process", [0, 1])
def test_data_layout_of_a_process_holding_half_the_devices(monkeypatch, process):
    """On the (data=4, model=2) mesh, a process holding devices 4p .. 4p+3 (data rows 2p,
    2p+1) feeds rows [4p, 4p+4) of a batch of 8: what jax reports as addressable is faked."""
    mesh = partitioning.make_mesh(2)
    rows_of = {d: (slice(2 * (i // 2), 2 * (i // 2) + 2),)
               for i, d in enumerate(mesh.devices.flat)}
    mine = {d: rows_of[d] for d in list(mesh.devices.flat)[4 * process:4 * process + 4]}
    monkeypatch.setattr(jax.sharding.NamedSharding, "addressable_devices_indices_map",
                        lambda self, shape: mine)
    layout = partitioning.data_layout(mesh, 8)
    assert (layout.batch_size, layout.shard_id, layout.num_shards) == (4, process, 2)
    assert layout.rows == slice(4 * process, 4 * process + 4)
