"""SSD from the command line: ``convert_annoset`` builds the AnnotatedDatum LMDB, ``train`` with an SSD
solver file reports ``detection_eval`` (mean AP) at its test passes, and ``test`` scores a trained
SSD the same way."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from recaffe.forks.ssd.shapes import make_shapes
from tests.cli.conftest import Result

NET = pathlib.Path(__file__).parents[1] / "fixtures" / "forks" / "ssd_shapes_train_test.prototxt"


def test_convert_annoset_train_and_test_report_detection_eval(
    cli: Callable[..., Result], tmp_path: pathlib.Path
) -> None:
    list_file = make_shapes(str(tmp_path / "shapes"), count=16, seed=4)
    result = cli(
        "convert_annoset",
        f"{tmp_path}/shapes/",
        list_file,
        tmp_path / "lmdb",
        "--label_type",
        "txt",
        "--encoded",
    )
    assert result.status == 0, result.err
    lmdb = str(tmp_path / "lmdb")
    (tmp_path / "net.prototxt").write_text(
        NET.read_text().replace("SHAPES_TEST_LMDB", lmdb).replace("SHAPES_LMDB", lmdb)
    )
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path / "net.prototxt"}" test_iter: 1 test_interval: 2 base_lr: 0.001 lr_policy: "fixed" '
        f'type: "Adam" max_iter: 2 display: 1 random_seed: 3 snapshot_prefix: "{tmp_path}/ssd" '
        'eval_type: "detection" ap_version: "11point" show_per_class_result: true'
    )
    result = cli("train", "-solver", tmp_path / "solver.prototxt")
    assert result.status == 0, result.err
    assert any(m.startswith("    Test net output #0: detection_eval = ") for m in result.messages), result.err
    assert any(m.startswith("class1: ") for m in result.messages)
    result = cli(
        "test",
        "-model",
        tmp_path / "net.prototxt",
        "-weights",
        tmp_path / "ssd_iter_2.caffemodel",
        "-iterations",
        "1",
    )
    assert result.status == 0, result.err
    assert any(m.startswith("detection_eval = ") for m in result.messages), result.err
