"""Deploy mode's blob memory (recaffe/deploy.py, liveness over the DAG; recaffe/memory_plan.py): a
blob's memory is given back once no later layer reads it, and what is allocated fits the batch of
the pass (not the prototxt's larger one), so the activations held at any moment stay well below the
plain net's, whose every blob stays readable; the outputs and the blobs asked for are kept."""

from __future__ import annotations

import pathlib

import pytest
import torch

import recaffe
from tests.test_deploy import DEPLOY_PROTOTXTS, FUSIONS, RESNET, assert_close, pair


def held_bytes(net: recaffe.Net) -> int:
    """Bytes of activation memory the net's blobs hold now (storage shared by blobs counted once)."""
    storages = {}
    for blob in net.blob_list:
        memory = blob._data_mem
        if memory.allocated:
            storages[id(memory)] = memory.size * blob.data.element_size() if memory.flat is not None \
                else memory.held.numel() * memory.held.element_size()  # type: ignore[union-attr]
    return sum(storages.values())


def peak_held(net: recaffe.Net, keep: list[str]) -> int:
    """The most activation memory held right after any layer during one forward."""
    peak = 0

    def after(_: int) -> None:
        nonlocal peak
        peak = max(peak, held_bytes(net))

    net.after_forward.append(after)
    try:
        net.forward(keep=keep)
    finally:
        net.after_forward.remove(after)
    return peak


@pytest.mark.parametrize("path", [*DEPLOY_PROTOTXTS, RESNET],
                         ids=lambda p: p.parent.name if p.name == "deploy.prototxt" else p.stem)
def test_deploy_mode_holds_less_and_keeps_what_is_asked_for(path: pathlib.Path) -> None:
    plain, fused = pair(path)
    asked = plain.blob_names[len(plain.blob_names) // 2]  # a blob from the middle of the net
    plain.forward()
    everything = held_bytes(plain)
    fused.forward(keep=[asked])  # (the first pass folds the weights)
    peak = peak_held(fused, [asked])
    assert peak <= 0.3 * everything, (peak, everything)  # (0.09-0.17 on these nets)
    assert_close(plain.blob_by_name(asked).data, fused.blob_by_name(asked).data)
    for index in plain.output_blob_indices:
        assert_close(plain.blob_list[index].data, fused.blob_list[index].data)
    released = [name for name in fused.blob_names
                if not fused.blob_by_name(name)._data_mem.allocated]
    assert released and asked not in released
    assert all(float(fused.blob_by_name(name).data.abs().sum()) == 0 for name in released[:3])


def test_memory_fits_the_batch_run_and_grows_again() -> None:
    plain, fused = pair(FUSIONS)  # the prototxt says batch 2; run at 1, then 2, then 1
    held = []
    for batch in (1, 2, 1):
        for net in (plain, fused):
            data = net.blob_by_name("data")
            data.reshape((batch, *data.shape[1:]))
            net.reshape()
            data.data.normal_(generator=torch.Generator().manual_seed(batch))
        plain.forward()
        held.append(peak_held(fused, []))
        assert_close(plain.blob_by_name("prob").data, fused.blob_by_name("prob").data)
    assert held[1] > 1.5 * held[0] and held[2] < 1.2 * held[0]  # (the kept input, output: capacity)


def test_plain_test_nets_keep_every_blob() -> None:
    plain, _ = pair(RESNET)
    plain.forward()
    assert all(blob._data_mem.allocated for blob in plain.blob_list)
    assert all(bool(torch.any(blob.data != 0)) for blob in plain.blob_list[-3:])
