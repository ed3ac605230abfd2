"""CPU/GPU mode: asking for a GPU where there is none fails, or with RECAFFE_CPU_FALLBACK=1
warns once and keeps the CPU (the CLI's -gpu and pycaffe's set_mode_gpu alike)."""

from __future__ import annotations

import logging

import pytest
import torch

import caffe
from recaffe import device


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device, "_fallback_warned", [False])
    yield
    device.set_mode_cpu()


def test_set_mode_gpu_without_cuda_is_an_error_naming_the_fallback(no_cuda, monkeypatch) -> None:
    monkeypatch.delenv("RECAFFE_CPU_FALLBACK", raising=False)
    with pytest.raises(RuntimeError, match="no CUDA device.*set RECAFFE_CPU_FALLBACK=1"):
        caffe.set_mode_gpu()


def test_pycaffe_set_mode_gpu_falls_back_to_the_cpu_with_one_warning(no_cuda, monkeypatch, caplog) -> None:
    monkeypatch.setenv("RECAFFE_CPU_FALLBACK", "1")
    with caplog.at_level(logging.WARNING, logger="recaffe"):
        caffe.set_mode_gpu()
        caffe.set_mode_gpu()
    assert device.mode() == "cpu" and device.default_device() == torch.device("cpu")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "RECAFFE_CPU_FALLBACK is set, using the CPU" in warnings[0].getMessage()
