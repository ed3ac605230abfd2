"""``caffe device_query`` with and without CUDA devices."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import cuda_available


def test_no_cuda_device_is_reported(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = cli("device_query")
    assert result.status == 1
    assert any(line.startswith("E") and "No CUDA device is available to PyTorch" in line
               for line in result.err.splitlines())


def test_unknown_gpu_id(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    result = cli("device_query", "-gpu", "3")
    assert result.status == 1 and result.fatal() == "-gpu 3: there is no CUDA device 3 (PyTorch sees 1)"
    assert "got 'x'" in cli("device_query", "-gpu", "x").fatal()


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device")
def test_real_device(cli) -> None:
    result = cli("device_query", "-gpu", "0")
    assert result.status == 0, result.err
    assert "Device id:                     0" in result.messages
    assert f"Name:                          {torch.cuda.get_device_name(0)}" in result.messages
