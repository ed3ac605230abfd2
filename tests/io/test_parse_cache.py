"""The prototxt parse cache (recaffe/io/parse_cache.py): a net read again is protobuf's binary form of
the first read's text parse, the same message; anything but a clean BVLC parse is not kept; a cache
that cannot be written or read only means parsing the text."""

from __future__ import annotations

import os
import pathlib

import pytest

import recaffe
from recaffe.forks import reading
from recaffe.io import parse_cache, prototxt
from recaffe.proto import caffe_pb2

NET = """name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  param { lr_mult: 0.1 } inner_product_param { num_output: 2 bias_term: false } }
"""


@pytest.fixture
def cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(parse_cache.ENV, str(folder))
    return folder


@pytest.fixture
def text_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources protobuf's text parser is run on, from now on."""
    calls: list[str] = []
    parse = reading.parse_recording

    def counting(text: str, msg: object, source: str) -> list[reading.Unknown]:
        calls.append(source)
        return parse(text, msg, source)  # type: ignore[arg-type]

    monkeypatch.setattr(reading, "parse_recording", counting)
    return calls


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    return path


def entries(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(folder.glob("*.pb")) if folder.is_dir() else []


def test_a_net_read_again_comes_from_the_cache_unchanged(tmp_path: pathlib.Path, cache: pathlib.Path,
                                                         text_parses: list[str]) -> None:
    path = write(tmp_path / "net.prototxt", NET)
    first = prototxt.read_net_param(path)
    assert len(text_parses) == 1 and len(entries(cache)) == 1
    second = prototxt.read_net_param(path)
    assert len(text_parses) == 1  # the binary form was parsed, not the text
    assert second == first and second.SerializeToString() == first.SerializeToString()
    spec = second.layer[2].param[0]
    assert spec.HasField("lr_mult") and not spec.HasField("decay_mult")
    net = recaffe.Net(str(path), recaffe.TEST)
    assert [layer.name for layer in net.layers] == ["data", "conv", "ip"]


def test_a_changed_text_is_parsed_again(tmp_path: pathlib.Path, cache: pathlib.Path,
                                        text_parses: list[str]) -> None:
    path = write(tmp_path / "net.prototxt", NET)
    prototxt.read_net_param(path)
    write(path, NET.replace("num_output: 3", "num_output: 5"))
    assert prototxt.read_net_param(path).layer[1].convolution_param.num_output == 5
    assert len(text_parses) == 2 and len(entries(cache)) == 2


def test_the_published_deploy_nets_read_the_same_from_the_cache(caffe_models: pathlib.Path,
                                                                cache: pathlib.Path) -> None:
    paths = sorted(caffe_models.glob("models/*/deploy.prototxt"))
    assert paths
    for path in paths:
        parsed = prototxt.read_net_param(path)
        cached = prototxt.read_net_param(path)
        assert cached == parsed and cached.SerializeToString() == parsed.SerializeToString(), path
    assert len(entries(cache)) == len(paths)


def test_unknown_fields_forks_and_errors_are_not_kept(tmp_path: pathlib.Path, cache: pathlib.Path,
                                                      text_parses: list[str]) -> None:
    unknown = write(tmp_path / "unknown.prototxt", NET.replace('name: "ip"', 'name: "ip" shiny: 1'))
    for _ in range(2):
        with pytest.raises(reading.UnknownFieldsError, match="shiny"):
            prototxt.read_net_param(unknown)
    broken = write(tmp_path / "broken.prototxt", NET + "layer {")
    with pytest.raises(prototxt.ProtoFileError):
        prototxt.read_net_param(broken)
    unknown_type = write(tmp_path / "type.prototxt", NET.replace('"InnerProduct"', '"NoSuchType"'))
    with pytest.raises(prototxt.ProtoFileError, match="NoSuchType"):
        prototxt.read_net_param(unknown_type)
    assert entries(cache) == []


def test_a_named_dialect_reads_the_text(tmp_path: pathlib.Path, cache: pathlib.Path,
                                        text_parses: list[str]) -> None:
    path = write(tmp_path / "net.prototxt", NET)
    for _ in range(2):
        prototxt.read_net_param(path, dialect="bvlc")
    assert len(text_parses) == 2 and entries(cache) == []


def test_a_damaged_entry_is_parsed_from_the_text(tmp_path: pathlib.Path, cache: pathlib.Path,
                                                 text_parses: list[str]) -> None:
    path = write(tmp_path / "net.prototxt", NET)
    expected = prototxt.read_net_param(path)
    (entry,) = entries(cache)
    kept = entry.read_bytes()
    other = caffe_pb2.NetParameter(name="other").SerializeToString()
    for damaged in (b"\xff\xff\xff", kept[:32] + other, kept[:-1]):  # garbage, another message, cut
        entry.write_bytes(damaged)
        assert prototxt.read_net_param(path) == expected
        assert entry.read_bytes() == kept  # written again
    assert len(text_parses) == 4


def test_off_and_unwritable_folders_read_the_text(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch,
                                                  text_parses: list[str]) -> None:
    path = write(tmp_path / "net.prototxt", NET)
    monkeypatch.setenv(parse_cache.ENV, "off")
    assert parse_cache.folder() is None
    expected = prototxt.read_net_param(path)
    blocked = write(tmp_path / "a_file", "")
    monkeypatch.setenv(parse_cache.ENV, str(blocked / "cache"))  # a folder inside a file: never writable
    assert prototxt.read_net_param(path) == expected
    assert prototxt.read_net_param(path) == expected
    assert len(text_parses) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "net.prototxt"]


def test_the_default_folder_is_in_the_user_cache(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv(parse_cache.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert parse_cache.folder() == tmp_path / "recaffe" / "prototxt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_cache.folder() == tmp_path / "home" / ".cache" / "recaffe" / "prototxt"


def kept_names(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return {caffe_pb2.NetParameter.FromString(e.read_bytes()[32:]).name: e for e in entries(folder)}


def test_the_least_recently_used_entries_go_first(tmp_path: pathlib.Path, cache: pathlib.Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_cache, "MAX_ENTRIES", 2)
    paths = [write(tmp_path / f"net{i}.prototxt", NET.replace('"small"', f'"net{i}"')) for i in range(3)]
    for i, path in enumerate(paths[:2]):
        prototxt.read_net_param(path)
        stamp = 1_000_000_000 * (10 + i)  # net0 written long ago, net1 later
        os.utime(kept_names(cache)[f"net{i}"], ns=(stamp, stamp))
    prototxt.read_net_param(paths[0])  # used again: now the most recent
    prototxt.read_net_param(paths[2])
    assert set(kept_names(cache)) == {"net0", "net2"}
