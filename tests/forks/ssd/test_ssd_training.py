"""SSD training end to end: a small SSD (tests/fixtures/forks/ssd_shapes_train_test.prototxt) on the
generated shapes dataset, with an SSD solver file (eval_type "detection", ap_version "11point");
50 iterations lower the MultiBoxLoss and raise the mean AP that the solver's test pass computes
from DetectionEvaluate."""

from __future__ import annotations

import pathlib

import pytest
import torch

from recaffe import solver as solvers
from recaffe.forks.ssd.shapes import make_shapes_lmdb

FIXTURE = pathlib.Path(__file__).parents[2] / "fixtures" / "forks" / "ssd_shapes_train_test.prototxt"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("shapes")
    return make_shapes_lmdb(str(root / "train"), count=64, seed=0), make_shapes_lmdb(
        str(root / "test"), count=32, seed=1
    )


def make_solver(tmp_path: pathlib.Path, shapes: tuple[str, str]) -> solvers.Solver:
    net = FIXTURE.read_text().replace("SHAPES_TEST_LMDB", shapes[1]).replace("SHAPES_LMDB", shapes[0])
    (tmp_path / "net.prototxt").write_text(net)
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path / "net.prototxt"}" test_iter: 2 test_interval: 1000 base_lr: 0.001 '
        'lr_policy: "fixed" '
        'type: "Adam" momentum: 0.9 weight_decay: 0.0005 max_iter: 50 display: 0 random_seed: 1 '
        'snapshot_after_train: false test_initialization: false eval_type: "detection" ap_version: "11point"'
    )
    return solvers.load_solver(str(tmp_path / "solver.prototxt"))


def test_fifty_iterations_lower_the_loss_and_raise_the_map(
    tmp_path: pathlib.Path, shapes: tuple[str, str]
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        solver = make_solver(tmp_path, shapes)
        [(name, map_before)] = solver.test(0)
        losses = []
        for _ in range(50):
            solver.step(1)
            losses.append(float(solver.net.blob_by_name("mbox_loss").data))
        [(_, map_after)] = solver.test(0)
    finally:
        torch.set_num_threads(threads)
    assert name == "detection_eval"
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.75 * first, losses
    assert map_before < 0.1 and map_after > map_before + 0.3, (map_before, map_after)


def test_the_same_seed_gives_the_same_batches_and_losses(
    tmp_path: pathlib.Path, shapes: tuple[str, str]
) -> None:
    runs = []
    for k in range(2):
        folder = tmp_path / str(k)
        folder.mkdir()
        solver = make_solver(folder, shapes)
        solver.step(2)
        label = solver.net.blob_by_name("label").data.clone()
        runs.append(
            (
                float(solver.net.blob_by_name("mbox_loss").data),
                solver.net.blob_by_name("data").data.clone(),
                label,
            )
        )
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1]) and torch.equal(runs[0][2], runs[1][2])


def test_ssd_solver_fields_are_read_in_the_dialect_and_carried(tmp_path: pathlib.Path) -> None:
    from recaffe import forks
    from recaffe.io import prototxt

    path = tmp_path / "solver.prototxt"
    path.write_text(
        'net: "n.prototxt" base_lr: 0.1 eval_type: "detection" ap_version: "MaxIntegral" '
        "show_per_class_result: true"
    )
    param = prototxt.read_solver_param(path)
    assert param.net == "n.prototxt" and param.base_lr == pytest.approx(0.1)
    fields = forks.get_dialect("ssd").fork_solver_param(param)
    assert (fields.eval_type, fields.ap_version, fields.show_per_class_result) == (
        "detection",
        "MaxIntegral",
        True,
    )
    path.write_text('net: "n.prototxt" layer_wise_reduce: false')  # BVLC's field 41: read as BVLC's
    assert not prototxt.read_solver_param(path).layer_wise_reduce
    path.write_text('net: "n.prototxt" eval_typo: "detection"')
    with pytest.raises(prototxt.ProtoFileError, match="SolverParameter.*eval_typo"):
        prototxt.read_solver_param(path)
