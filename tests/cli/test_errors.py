"""The command line on bad files: one FATAL line naming the file, no traceback unless asked for."""

from __future__ import annotations

import h5py
import numpy as np

from recaffe import Net
from recaffe.cli import main as cli_main


def _corrupt_weights(tmp_path, tiny_net):
    path = tmp_path / "w.caffemodel.h5"
    Net(str(tiny_net), phase=1).save_hdf5(path)
    with h5py.File(path, "a") as f:  # a param whose declared size the file does not hold
        del f["data/ip1/0"]
        f.create_dataset("data/ip1/0", shape=(5, 3), dtype=np.float32)
    return path


def test_corrupt_hdf5_weights_give_one_fatal_line(cli, tiny_net, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("RECAFFE_TRACEBACK", raising=False)
    path = _corrupt_weights(tmp_path, tiny_net)
    result = cli("test", "-model", tiny_net, "-weights", path, "-iterations", "1")
    assert result.status == 1
    assert result.fatal() == (
        f"cannot read the HDF5 weights file {str(path)!r}: dataset '/data/ip1/0' declares shape (5, 3) "
        "(60 bytes) but the file stores only 0 bytes of it. The file is damaged or not of this kind; "
        "restore it from a good copy or recreate it")
    assert "Traceback" not in result.err


def test_traceback_on_request(cli, tiny_net, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECAFFE_TRACEBACK", "1")
    result = cli("test", "-model", tiny_net, "-weights", _corrupt_weights(tmp_path, tiny_net))
    assert result.status == 1 and "Traceback" in result.err


def test_an_internal_error_is_one_fatal_line(cli, monkeypatch) -> None:
    monkeypatch.delenv("RECAFFE_TRACEBACK", raising=False)

    def broken(args):  # stands for a bug in a command
        raise ZeroDivisionError("division by zero")

    parser = cli_main.build_parser()
    monkeypatch.setattr(cli_main, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["device_query"].set_defaults(run=broken)
    result = cli("device_query")
    assert result.status == 1
    assert result.fatal() == ("internal error: ZeroDivisionError: division by zero (run with "
                              "RECAFFE_TRACEBACK=1 for the traceback, and please report it)")
    assert "Traceback" not in result.err


def test_partial_weights_are_loaded_with_a_warning(cli, tiny_net, tmp_path) -> None:
    weights = Net(str(tiny_net), phase=1).to_proto()
    kept = [layer for layer in weights.layer if layer.name != "ip2"]  # weights for ip1 only
    del weights.layer[:]
    weights.layer.extend(kept)
    (tmp_path / "partial.caffemodel").write_bytes(weights.SerializeToString())
    result = cli("test", "-model", tiny_net, "-weights", tmp_path / "partial.caffemodel", "-iterations", "1")
    assert result.status == 0
    assert (f"{tmp_path / 'partial.caffemodel'} covers only some layers of net tiny; these are left at "
            "their fillers: ip2") in result.messages


def test_a_damaged_solver_state_gives_one_fatal_line(cli, tmp_path, monkeypatch) -> None:
    from tests.cli import nets

    monkeypatch.delenv("RECAFFE_TRACEBACK", raising=False)
    solver = nets.training_dir(tmp_path, max_iter=2, snapshot=0)
    monkeypatch.chdir(tmp_path)
    with h5py.File(tmp_path / "bad.solverstate.h5", "w") as f:
        f["iter"] = np.array([], np.int32)
        f["current_step"] = np.array([0], np.int32)
        f.create_group("history")
    result = cli("train", "-solver", solver, "-snapshot", "bad.solverstate.h5")
    assert result.status == 1
    assert result.fatal() == ("cannot read the solver state 'bad.solverstate.h5': it holds 0 history blobs, "
                              "the solver needs 4")
    assert "Traceback" not in result.err
