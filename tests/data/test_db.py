"""recaffe.data.db, after Caffe's test_db: cursor order, seek, key/value, writing, errors."""

from __future__ import annotations

import re

import pytest

from recaffe.data import DataError, db
from recaffe.proto import caffe_pb2
from tests.data.helpers import BACKENDS, make_datum, need_backend, read_all, write_db


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    need_backend(request.param)
    return request.param


@pytest.fixture
def two_records(tmp_path, backend) -> str:
    # written out of order: both stores give keys back sorted
    return write_db(tmp_path / "db", {"fish-bike.jpg": make_datum(1, (3, 2, 5), 7),
                                      "cat.jpg": make_datum(0, (3, 4, 6), 9)}, backend)


def test_cursor_walks_keys_in_order_and_ends(two_records, backend) -> None:
    with db.open_db(two_records, backend) as database:
        cursor = database.cursor()
        assert cursor.valid and cursor.key() == b"cat.jpg"
        datum = caffe_pb2.Datum.FromString(cursor.value())
        assert (datum.channels, datum.height, datum.width, datum.label) == (3, 4, 6, 0)
        cursor.next()
        assert cursor.valid and cursor.key() == b"fish-bike.jpg"
        cursor.next()
        assert not cursor.valid
        with pytest.raises(DataError, match="past the last record"):
            cursor.value()


def test_seek_to_first_restarts(two_records, backend) -> None:
    with db.open_db(two_records, backend) as database:
        cursor = database.cursor()
        cursor.next()
        cursor.seek_to_first()
        assert cursor.valid and cursor.key() == b"cat.jpg"


def test_write_mode_adds_records(two_records, backend) -> None:
    with db.open_db(two_records, backend, "write") as database:
        txn = database.transaction()
        txn.put("a.jpg", b"x")
        txn.commit()
    assert [k for k, _ in read_all(two_records, backend)] == [b"a.jpg", b"cat.jpg", b"fish-bike.jpg"]


def test_lmdb_map_grows_when_full(tmp_path) -> None:
    big = {f"{i:04d}": bytes(200_000) for i in range(80)}  # 16 MB > LMDB's 10 MB default map
    path = write_db(tmp_path / "big", big)
    assert len(read_all(path)) == 80


def test_new_refuses_an_existing_database(two_records, backend) -> None:
    with pytest.raises(DataError, match="already exists"):
        db.open_db(two_records, backend, "new")


def test_missing_database_names_path_and_backend(tmp_path, backend) -> None:
    with pytest.raises(DataError, match=rf"{backend.upper()} database '.*nowhere'.*no such file"):
        db.open_db(tmp_path / "nowhere", backend)


def test_backend_names() -> None:
    assert db.backend_name(caffe_pb2.DataParameter.LMDB) == "lmdb"
    assert db.backend_name(caffe_pb2.DataParameter.LEVELDB) == "leveldb"
    assert db.backend_name("LMDB") == "lmdb"
    with pytest.raises(DataError, match="unknown database backend"):
        db.backend_name("rocksdb")


def test_leveldb_without_plyvel_names_the_extra(tmp_path, monkeypatch) -> None:
    (tmp_path / "db").mkdir()
    monkeypatch.setitem(__import__("sys").modules, "plyvel", None)
    with pytest.raises(DataError, match=r"pip install recaffe\[leveldb\]"):
        db.open_db(tmp_path / "db", "leveldb")


def test_lmdb_folder_opened_as_leveldb_gets_a_hint(tmp_path) -> None:
    pytest.importorskip("plyvel")
    path = write_db(tmp_path / "db", {"k": b"v"}, "lmdb")
    with pytest.raises(DataError, match="backend: LMDB"):
        db.open_db(path, "leveldb")


def test_shared_lmdb_closes_after_the_working_directory_changed(tmp_path, monkeypatch) -> None:
    write_db(tmp_path / "db", {"a": make_datum(0, (1, 1, 1), 1)}, "lmdb")
    monkeypatch.chdir(tmp_path)
    database = db.open_db("db", "lmdb")
    monkeypatch.chdir(tmp_path.parent)
    database.close()  # releases the environment it acquired, not one named by the new cwd
    with db.open_db(tmp_path / "db", "lmdb") as again:
        assert again.cursor().key() == b"a"


# ------------------------------------------------------------------- damaged LMDB files
def _big_lmdb(tmp_path) -> str:
    return write_db(tmp_path / "big", {f"{i:05d}": make_datum(i % 3, (1, 30, 30), i % 250)
                                       for i in range(400)})


def test_truncated_lmdb_is_refused_before_mapping(tmp_path) -> None:
    # reading a page past the end of a truncated data.mdb would kill the process with SIGBUS
    path = _big_lmdb(tmp_path)
    data_file = tmp_path / "big" / "data.mdb"
    size = data_file.stat().st_size
    with open(data_file, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(DataError) as info:
        db.open_db(path, "lmdb")
    assert str(info.value) == (
        f"cannot open the LMDB database {path!r}: {str(data_file)!r} is truncated ({size // 2} bytes, "
        f"its meta page says {size}). Rebuild the database or restore it from a good copy")


def test_lmdb_without_a_meta_page_is_refused(tmp_path) -> None:
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "data.mdb").write_bytes(b"\0" * 4096)
    with pytest.raises(DataError, match=r"'.*data.mdb' is not an LMDB data file \(no LMDB meta page\)"):
        db.open_db(tmp_path / "fake", "lmdb")


def test_damaged_lmdb_pages_are_refused_before_mapping(tmp_path) -> None:
    # liblmdb aborts the process on a damaged page (Assertion 'IS_LEAF(mp)' failed)
    path = _big_lmdb(tmp_path)
    data_file = tmp_path / "big" / "data.mdb"
    raw = bytearray(data_file.read_bytes())
    for offset in range(2 * 4096, len(raw), 4096):  # every page header after the two meta pages
        raw[offset + 10 : offset + 16] = b"\xff" * 6
    data_file.write_bytes(bytes(raw))
    with pytest.raises(DataError) as info:
        db.open_db(path, "lmdb")
    assert re.fullmatch(f"cannot open the LMDB database {re.escape(repr(path))}: "
                        f"{re.escape(repr(str(data_file)))} has a damaged page \\d+. Rebuild the database or "
                        "restore it from a good copy", str(info.value)), str(info.value)


def test_a_new_database_appears_only_when_complete(tmp_path) -> None:
    target = tmp_path / "built"
    with db.Writer(target, "lmdb") as writer:
        writer.put("a", b"1")
        assert not target.exists()  # built beside it, under a temporary name
        (building,) = [p for p in tmp_path.iterdir() if p.name.startswith(".built.tmp-")]
    assert target.is_dir() and not building.exists()
    with pytest.raises(RuntimeError, match="stop"), db.Writer(tmp_path / "failed", "lmdb") as writer:
        writer.put("a", b"1")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == [target]  # nothing partial is left
    with pytest.raises(DataError, match=f"cannot create the LMDB database {str(target)!r}: it already"):
        db.Writer(target, "lmdb")
