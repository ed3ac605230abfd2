"""Solver count/rank settings and Caffe's round-robin data sharding (DataLayer/HDF5DataLayer::Skip)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from recaffe import distributed
from recaffe.blob import Blob
from recaffe.distributed import settings
from recaffe.layer import Layer
from recaffe.proto import caffe_pb2
from tests.data.helpers import build_layer, fill_db, forward
from tests.layers.data.test_hdf5_data import hdf5_layer, sample  # noqa: F401  (fixture)

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


@pytest.fixture
def as_rank() -> Iterator[Callable[[int, int], None]]:
    """Set solver count and rank for the test; back to one solver afterwards."""
    def set_rank(rank: int, count: int) -> None:
        distributed.set_solver_count(count)
        distributed.set_solver_rank(rank)

    yield set_rank
    set_rank(0, 1)


def test_settings_and_shards(as_rank) -> None:
    assert (distributed.solver_count(), distributed.solver_rank(), distributed.is_root()) == (1, 0, True)
    assert distributed.data_shard(TRAIN) is None
    as_rank(1, 3)
    assert not distributed.is_root()
    assert distributed.data_shard(TRAIN) == (1, 3)
    assert distributed.data_shard(TEST) is None  # test nets run on rank 0 only: no skipping
    with pytest.raises(ValueError, match="solver_count must be at least 1"):
        distributed.set_solver_count(0)
    with pytest.raises(ValueError, match="solver_rank must be non-negative"):
        distributed.set_solver_rank(-1)


def test_only_the_root_logs_info(as_rank) -> None:
    logger = logging.getLogger("recaffe")
    level = logger.level
    try:
        as_rank(1, 2)
        settings.quiet_unless_root(verbose=True)  # -v: every rank logs
        assert logger.level == level
        settings.quiet_unless_root()
        assert not logging.getLogger("recaffe.solver").isEnabledFor(logging.INFO)
        assert logging.getLogger("recaffe.solver").isEnabledFor(logging.WARNING)
    finally:
        logger.setLevel(level)


def interleave(per_rank: list[list[float]]) -> list[float]:
    """Items in offset order when rank r holds offsets r, r+N, ..."""
    return [x for round_ in zip(*per_rank) for x in round_]


def items(built: tuple[Layer, list[Blob]], batches: int) -> list[float]:
    """Each item of ``batches`` forwards of a built layer as one number: first data value * 1000 + label."""
    layer, top = built
    out: list[float] = []
    for _ in range(batches):
        data, label = forward(layer, top)[:2]
        out.extend((data.reshape(len(data), -1)[:, 0] * 1000 + label.reshape(len(data), -1)[:, 0]).tolist())
    return out


def shards(as_rank: Callable[[int, int], None], make: Callable[[], tuple[Layer, list[Blob]]], count: int,
           batches: int) -> list[list[float]]:
    per_rank = []
    for rank in range(count):
        as_rank(rank, count)
        per_rank.append(items(make(), batches))
    return per_rank


@pytest.mark.parametrize("count", [2, 3])
def test_data_layer_deals_records_round_robin(tmp_path, as_rank, count) -> None:
    source = fill_db(tmp_path / "db")  # 5 records: label i, pixels i
    snippet = f'data_param {{ source: "{source}" backend: LMDB batch_size: 3 }}'
    single = items(build_layer("Data", snippet), batches=3 * count)
    per_rank = shards(as_rank, lambda: build_layer("Data", snippet), count, batches=3)
    assert per_rank[0] != per_rank[1]
    assert interleave(per_rank) == single  # one round of count records is shared by the ranks
    assert items(build_layer("Data", snippet, TEST), batches=2) == single[:6]  # TEST keeps all


@pytest.mark.parametrize("count", [2, 3])
def test_hdf5_data_deals_rows_round_robin(sample, as_rank, count) -> None:  # noqa: F811
    single = items(hdf5_layer(sample, tops=2, batch_size=7), batches=3 * count)
    per_rank = shards(as_rank, lambda: hdf5_layer(sample, tops=2, batch_size=7), count, batches=3)
    assert per_rank[0] != per_rank[1]
    assert interleave(per_rank) == single  # across both files and back to the first
