"""HDF5Data, after Caffe's test_hdf5data_layer, plus shuffling with glibc's rand() and errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from recaffe.data import crand
from recaffe.layer import LayerError
from tests.data.helpers import build_layer, forward

ROWS, SHAPE = 10, (8, 6, 5)
TOTAL = ROWS * int(np.prod(SHAPE))


@pytest.fixture
def sample(tmp_path, monkeypatch) -> str:
    """Caffe's generate_sample_data.py: two files, the second gzip-compressed with uint8 labels."""
    data = np.arange(TOTAL, dtype=np.float32).reshape(ROWS, *SHAPE)
    label = (1 + np.arange(ROWS)[:, None]).astype(np.float32)
    with h5py.File(tmp_path / "sample_data.h5", "w") as f:
        f["data"], f["label"], f["label2"] = data, label, label + 1
    with h5py.File(tmp_path / "sample_data_2_gzip.h5", "w") as f:
        f.create_dataset("data", data=data + TOTAL, compression="gzip", compression_opts=1)
        f.create_dataset("label", data=label, compression="gzip", dtype="uint8")
        f.create_dataset("label2", data=label + 1, compression="gzip", dtype="uint8")
    (tmp_path / "list.txt").write_text("sample_data.h5\nsample_data_2_gzip.h5\n")
    monkeypatch.chdir(tmp_path)  # the list's relative names are opened from the working directory
    return "list.txt"


def hdf5_layer(source: str, extra: str = "", tops: int = 3, batch_size: int = 5):
    snippet = f'hdf5_data_param {{ source: "{source}" batch_size: {batch_size} {extra} }}'
    return build_layer("HDF5Data", snippet, tops=tops, top_names=("data", "label", "label2"))


def test_read(sample) -> None:
    layer, top = hdf5_layer(sample)
    assert [t.shape for t in top] == [(5, *SHAPE), (5, 1), (5, 1)]
    size = int(np.prod(SHAPE))
    for step in range(10):
        data, label, label2 = forward(layer, top)
        half = 0 if step % 2 == 0 else 5
        file_offset = 0 if step % 4 < 2 else TOTAL
        np.testing.assert_array_equal(label[:, 0], 1 + half + np.arange(5))
        np.testing.assert_array_equal(label2[:, 0], 2 + half + np.arange(5))
        np.testing.assert_array_equal(data.reshape(-1), file_offset + half * size + np.arange(5 * size))


def test_batches_cross_file_boundaries(sample) -> None:
    layer, top = hdf5_layer(sample, tops=2, batch_size=7)
    labels = [forward(layer, top)[1][:, 0].tolist() for _ in range(3)]
    assert labels == [[1, 2, 3, 4, 5, 6, 7], [8, 9, 10, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 1]]


def expected_shuffled_rows(files: int, rows: int, batches: int, batch_size: int) -> list[tuple[int, int]]:
    """Caffe's shuffle order, replayed: (file, row) for each item, from glibc's srand(1) state."""
    stream = crand.GlibcRandom(1)
    order = list(range(files))
    crand.random_shuffle(order, stream)
    perm = list(range(rows))
    crand.random_shuffle(perm, stream)
    current_file, current_row, out = 0, 0, []
    for _ in range(batches * batch_size):
        out.append((order[current_file], perm[current_row]))
        current_row += 1
        if current_row == rows:
            current_file += 1
            if current_file == files:
                current_file = 0
                crand.random_shuffle(order, stream)
            perm = list(range(rows))
            crand.random_shuffle(perm, stream)  # loading a file shuffles its rows...
            current_row = 0
            crand.random_shuffle(perm, stream)  # ...and running out of rows shuffles them again
    return out


def test_shuffle_matches_std_random_shuffle(sample, monkeypatch) -> None:
    monkeypatch.setattr(crand, "PROCESS_RAND", crand.GlibcRandom(1))  # a fresh process's rand()
    layer, top = hdf5_layer(sample, "shuffle: true", tops=2)
    got = [forward(layer, top) for _ in range(6)]
    want = expected_shuffled_rows(2, ROWS, 6, 5)
    for batch, (data, label) in enumerate(got):
        for item in range(5):
            file, row = want[batch * 5 + item]
            assert label[item, 0] == row + 1
            assert data[item].reshape(-1)[0] == file * TOTAL + row * int(np.prod(SHAPE))


def test_shuffle_does_not_depend_on_caffe_seed(sample, monkeypatch) -> None:
    from recaffe import rng

    runs = []
    for seed in (1, 2):
        monkeypatch.setattr(crand, "PROCESS_RAND", crand.GlibcRandom(1))
        rng.set_random_seed(seed)
        layer, top = hdf5_layer(sample, "shuffle: true", tops=2)
        runs.append(forward(layer, top)[1])
    np.testing.assert_array_equal(*runs)


def test_types_and_dims(tmp_path, monkeypatch) -> None:
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["data"] = np.arange(6, dtype=np.float64).reshape(3, 2) / 3
        f["label"] = np.array([5, -1, 2], dtype=np.int64)  # 1-D works: the top is (batch,)
    (tmp_path / "l.txt").write_text(f"{tmp_path / 't.h5'}")
    layer, top = hdf5_layer(str(tmp_path / "l.txt"), tops=2, batch_size=2)
    data, label = forward(layer, top)
    assert top[1].shape == (2,) and label.tolist() == [5, -1]
    np.testing.assert_array_equal(data, (np.arange(4, dtype=np.float64).reshape(2, 2) / 3).astype(np.float32))


@pytest.mark.parametrize(("contents", "message"), [
    ({"data": np.zeros((3, 2))}, r"no dataset 'label' .*datasets found: data"),
    ({"data": np.zeros((3, 2)), "label": np.zeros(4)}, "has 4 rows but dataset 'data' has 3"),
    ({"data": np.array([b"ab", b"cd"]), "label": np.zeros(2)}, "unsupported type"),
])
def test_bad_files(tmp_path, contents, message) -> None:
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        for name, values in contents.items():
            f[name] = values
    (tmp_path / "l.txt").write_text(str(tmp_path / "bad.h5"))
    with pytest.raises(LayerError, match=rf"layer 'd' \(HDF5Data\): HDF5 file '.*bad.h5'.*{message}"):
        hdf5_layer(str(tmp_path / "l.txt"), tops=2)


def test_setup_errors(tmp_path, sample) -> None:
    with pytest.raises(LayerError, match="does not transform data"):
        hdf5_layer(sample, tops=2, extra="} transform_param { scale: 2")
    with pytest.raises(LayerError, match="failed to open the HDF5 source list 'nope.txt'"):
        hdf5_layer("nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(LayerError, match="at least 1 HDF5 filename"):
        hdf5_layer("empty.txt")
    (tmp_path / "missing.txt").write_text("missing.h5")
    with pytest.raises(LayerError, match="cannot read the HDF5 data file 'missing.h5': no such file"):
        hdf5_layer("missing.txt")
