"""to_torch + caffe_optimizer retrace recaffe's solver.step() on every golden solver case.

Each case (tests/golden/solvers: a small conv net, one of Caffe's six solvers, an lr_policy,
clipping, L1, iter_size, BatchNorm) is trained 8 steps by recaffe and, from the same initial
weights and data, by the exported module with the Caffe optimizer; after every step each weight
must agree within 1e-6 · max(1, max |w|) (the golden tests' convention: conv1's bias under
BatchNorm has an exactly zero true gradient, so its trajectory is weight decay plus rounding
noise, 2e-7 in absolute terms). torch.optim.SGD with the same
numbers does not: its momentum holds the gradient, not lr·gradient, so a rate change shows.
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
import pytest
import torch

import recaffe
from recaffe.export import caffe_optimizer, to_torch
from recaffe.export.torch_module import state_dict
from tests.conftest import GOLDEN

CASES = sorted(p.name for p in (GOLDEN / "solvers").iterdir() if p.is_dir())
STEPS = 8
TOLERANCE = 1e-6


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    scale = max(float(reference.abs().max()), 1.0)
    return float((ours.reshape(reference.shape) - reference).abs().max()) / scale


def torch_step(module: torch.nn.Module, inputs: dict[str, torch.Tensor], iter_size: int) -> None:
    for _ in range(iter_size):
        module.caffe_loss(module(**inputs)).backward()  # type: ignore[operator]


def worst_errors(case: str, folder: pathlib.Path, optimizer_factory) -> list[float]:  # type: ignore[no-untyped-def]
    golden = np.load(folder / "data.npz")
    solver = recaffe.load_solver(folder / "solver.prototxt")
    module = to_torch(solver.net)
    optimizer, scheduler = optimizer_factory(module, solver.param)
    params = dict(module.named_parameters()) | dict(module.named_buffers())
    errors = []
    for i in range(1, STEPS + 1):
        data, label = torch.from_numpy(golden[f"data/{i}"]), torch.from_numpy(golden[f"label/{i}"])
        solver.net.blobs["data"].data.copy_(data)
        solver.net.blobs["label"].data.copy_(label)
        solver.step(1)
        optimizer.zero_grad()
        torch_step(module, {"data": data, "label": label}, solver.param.iter_size)
        optimizer.step()
        scheduler.step()
        reference = state_dict(solver.net)
        errors.append(max(relative_error(params[key].detach(), value) for key, value in reference.items()))
    return errors


@pytest.mark.parametrize("case", CASES)
def test_caffe_optimizer_matches_recaffe_solver(case: str, tmp_path: pathlib.Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / case
    shutil.copytree(GOLDEN / "solvers" / case, folder)
    monkeypatch.chdir(folder)
    errors = worst_errors(case, folder, caffe_optimizer)
    assert max(errors) <= TOLERANCE, f"{case}: relative error per step {errors}"


def torch_sgd(module: torch.nn.Module, param: recaffe.caffe_pb2.SolverParameter):  # type: ignore[no-untyped-def]
    """What a port usually writes: torch.optim.SGD with Caffe's numbers and a StepLR."""
    groups = [{"params": [w], "lr": param.base_lr * module.caffe_params[name][0],  # type: ignore[index]
               "weight_decay": param.weight_decay * module.caffe_params[name][1]}  # type: ignore[index]
              for name, w in module.named_parameters()]
    optimizer = torch.optim.SGD(groups, lr=param.base_lr, momentum=param.momentum)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, param.stepsize, param.gamma)


def test_torch_sgd_does_not_match(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "sgd_full"
    shutil.copytree(GOLDEN / "solvers" / "sgd_full", folder)
    monkeypatch.chdir(folder)
    errors = worst_errors("sgd_full", folder, torch_sgd)
    assert max(errors[:3]) <= 1e-5  # the same until the rate changes (after step 3) ...
    assert max(errors[3:]) > 1e-3, errors  # ... then momentum holding g instead of lr·g diverges


def test_state_dict_resumes_exactly(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adam after 4 steps, saved and loaded into a fresh optimizer and scheduler (the bias
    correction's t and the multistep position come back), continues as if never interrupted."""
    shutil.copytree(GOLDEN / "solvers" / "adam", tmp_path / "adam")
    monkeypatch.chdir(tmp_path / "adam")
    golden = np.load("data.npz")
    param = recaffe.load_solver("solver.prototxt").param
    param.lr_policy, param.gamma = "multistep", 0.5
    param.stepvalue.extend([2, 5])
    runs = []
    for interrupted in (False, True):
        module = to_torch(recaffe.load_solver(param).net)
        optimizer, scheduler = caffe_optimizer(module, param)
        for i in range(1, STEPS + 1):
            if interrupted and i == 5:
                saved = tmp_path / "state.pt"
                torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, saved)
                optimizer, scheduler = caffe_optimizer(module, param)
                state = torch.load(saved, weights_only=False)
                optimizer.load_state_dict(state["optimizer"])
                scheduler.load_state_dict(state["scheduler"])
            optimizer.zero_grad()
            torch_step(module, {"data": torch.from_numpy(golden[f"data/{i}"]),
                                "label": torch.from_numpy(golden[f"label/{i}"])}, 1)
            optimizer.step()
            scheduler.step()
        runs.append({k: v.detach().clone() for k, v in module.state_dict().items()})
    for key, value in runs[0].items():
        assert torch.equal(value, runs[1][key]), key
