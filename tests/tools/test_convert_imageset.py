"""convert_imageset end to end on a few PNGs: keys, raw and encoded datums, options, shuffle."""

from __future__ import annotations

import numpy as np
import pytest

from recaffe import rng
from recaffe.cli.main import main
from recaffe.data import DataError, image
from recaffe.data.datum import datum_array, parse_datum
from recaffe.tools.convert_imageset import convert_imageset
from tests.data.helpers import read_all, write_png

PICTURES = [np.random.RandomState(i).randint(0, 256, size=(4 + i, 6, 3)).astype(np.uint8) for i in range(3)]


@pytest.fixture
def image_list(tmp_path) -> tuple[str, str]:
    names = ["a.png", "b c.png", "d.png"]
    for name, pixels in zip(names, PICTURES):
        write_png(tmp_path / name, pixels)
    (tmp_path / "list.txt").write_text("".join(f"{name} {i}\n" for i, name in enumerate(names)))
    return f"{tmp_path}/", str(tmp_path / "list.txt")


def records(path: str, backend: str = "lmdb") -> list[tuple[str, object]]:
    return [(k.decode(), parse_datum(v)) for k, v in read_all(path, backend)]


def test_raw_datums_in_list_order(image_list, tmp_path) -> None:
    root, listing = image_list
    assert convert_imageset(root, listing, str(tmp_path / "db")) == 3
    got = records(str(tmp_path / "db"))
    assert [k for k, _ in got] == ["00000000_a.png", "00000001_b c.png", "00000002_d.png"]
    for i, (_, datum) in enumerate(got):
        assert datum.label == i and not datum.encoded
        np.testing.assert_array_equal(datum_array(datum), PICTURES[i][:, :, ::-1].transpose(2, 0, 1))


def test_resize_and_gray(image_list, tmp_path) -> None:
    root, listing = image_list
    convert_imageset(root, listing, str(tmp_path / "db"), gray=True, resize_width=3, resize_height=2,
                     check_size=True)
    for _, datum in records(str(tmp_path / "db")):
        assert (datum.channels, datum.height, datum.width) == (1, 2, 3)


def test_encoded_keeps_file_bytes_or_reencodes(image_list, tmp_path) -> None:
    root, listing = image_list
    convert_imageset(root, listing, str(tmp_path / "png"), encoded=True)
    _, first = records(str(tmp_path / "png"))[0]
    assert first.encoded and first.data == (tmp_path / "a.png").read_bytes()
    convert_imageset(root, listing, str(tmp_path / "jpg"), encode_type="jpg")
    _, first = records(str(tmp_path / "jpg"))[0]
    assert first.encoded and first.data[:2] == b"\xff\xd8"  # a JPEG now
    assert image.decode_image(first.data).shape == (4, 6, 3)


def test_shuffle_uses_the_main_stream(image_list, tmp_path) -> None:
    root, listing = image_list
    rng.set_random_seed(3)
    convert_imageset(root, listing, str(tmp_path / "db"), shuffle=True)
    order = [0, 1, 2]
    rng.CaffeRNG(3).shuffle(order)
    assert [d.label for _, d in records(str(tmp_path / "db"))] == order


def test_unreadable_images_are_skipped_and_sizes_checked(image_list, tmp_path, caplog) -> None:
    root, listing = image_list
    (tmp_path / "more.txt").write_text("a.png 0\nmissing.png 1\nd.png 2\n")
    assert convert_imageset(root, str(tmp_path / "more.txt"), str(tmp_path / "db")) == 2
    assert "missing.png" in caplog.text
    assert [k for k, _ in records(str(tmp_path / "db"))] == ["00000000_a.png", "00000002_d.png"]
    with pytest.raises(DataError, match="incorrect data field size"):
        convert_imageset(root, listing, str(tmp_path / "db2"), check_size=True)


def test_cli_with_gflags_spellings(image_list, tmp_path, capsys) -> None:
    root, listing = image_list
    assert main(["convert_imageset", "-gray", "-backend=lmdb", root, listing, str(tmp_path / "db")]) == 0
    assert records(str(tmp_path / "db"))[0][1].channels == 1
    assert main(["convert_imageset", root, listing, str(tmp_path / "db")]) == 1  # exists already
    assert "already exists" in capsys.readouterr().err
