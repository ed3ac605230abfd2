"""recaffe.math.layout and the channels-last paths of the vision layers: Caffe's numbers, unchanged.

Each check runs once as shipped (channels-last on the CPU) and once with the layout choice turned
off (every tensor row-major, the plain torch kernels), and compares the two.
"""

from __future__ import annotations

import pytest
import torch

import recaffe
from recaffe.io import prototxt
from recaffe.math import layout
from recaffe.proto import caffe_pb2
from tests.layers.vision.reference import naive_pool

CL = torch.channels_last


def row_major_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "use_channels_last", lambda x: False)


def test_one_channel_gets_channels_last_strides() -> None:
    x = torch.randn(3, 1, 4, 5)
    y = layout.to_channels_last(x)
    assert y.stride() == (20, 1, 5, 1) and y.data_ptr() == x.data_ptr() and torch.equal(x, y)
    weight = layout.to_channels_last(torch.randn(2, 1, 3, 3))
    out = torch.convolution(y, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    assert out.is_contiguous(memory_format=CL) and not out.is_contiguous()  # torch read y as NHWC


def test_preferred_layout() -> None:
    assert layout.preferred(torch.randn(2, 3, 4, 4)).is_contiguous()  # too few channels to convert
    assert layout.preferred(torch.randn(2, 4, 4, 4)).is_contiguous(memory_format=CL)
    assert layout.preferred(torch.randn(2, 3)).is_contiguous()  # not an image batch
    template = layout.template(torch.randn(2, 8, 3, 3))
    assert template.shape == (2, 8, 3, 3) and template.is_contiguous(memory_format=CL)


def pooling_net(fields: str, tops: int) -> recaffe.Net:
    mask = ' top: "mask"' if tops == 2 else ""
    text = f"""
        force_backward: true
        layer {{ name: "in" type: "Input" top: "x"
                 input_param {{ shape {{ dim: 2 dim: 8 dim: 7 dim: 6 }} }} }}
        layer {{ name: "pool" type: "Pooling" bottom: "x" top: "y"{mask} pooling_param {{ {fields} }} }}"""
    return recaffe.Net(prototxt.parse_text(text, caffe_pb2.NetParameter()), recaffe.TRAIN)


def run_pooling(fields: str, tops: int, x: torch.Tensor) -> list[torch.Tensor]:
    net = pooling_net(fields, tops)
    net.blobs["x"].data.copy_(x)
    net.forward()
    y = net.blobs["y"]
    y.diff.copy_(torch.arange(float(y.count())).view(y.shape))
    net.backward()
    return [net.blobs[name].data.clone() for name in ("y", "mask")[:tops]] + [net.blobs["x"].diff.clone()]


@pytest.mark.parametrize(("fields", "tops"), [
    ("pool: MAX kernel_size: 3 stride: 2", 1), ("pool: MAX kernel_size: 3 stride: 2", 2),
    ("pool: MAX kernel_size: 2 stride: 2 pad: 1", 2), ("pool: AVE kernel_size: 3 stride: 2", 1),
    ("pool: AVE kernel_size: 3 stride: 1 pad: 1", 1)])
def test_pooling_channels_last_is_exact(fields: str, tops: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # small integers: many ties, where MAX must pick the first maximum in row-major window order
    x = torch.randint(0, 3, (2, 8, 7, 6), generator=torch.Generator().manual_seed(0)).float()
    shipped = run_pooling(fields, tops, x)
    p = prototxt.parse_text(fields, caffe_pb2.PoolingParameter())
    kernel, stride, pad = (p.kernel_size,) * 2, (p.stride,) * 2, (p.pad,) * 2
    top, mask = naive_pool(x, kernel, stride, pad, p.pool)
    assert torch.equal(shipped[0], top)
    if tops == 2:
        assert torch.equal(shipped[1], mask)
    row_major_only(monkeypatch)
    for mine, plain in zip(shipped, run_pooling(fields, tops, x)):
        assert torch.equal(mine, plain)


CHAIN = """
    force_backward: true
    layer { name: "in" type: "Input" top: "x" top: "label"
            input_param { shape { dim: 4 dim: 3 dim: 12 dim: 12 } shape { dim: 4 } } }
    layer { name: "conv1" type: "Convolution" bottom: "x" top: "c1"
            convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "xavier" }
                                bias_filler { type: "constant" value: 0.1 } } }
    layer { name: "pool1" type: "Pooling" bottom: "c1" top: "p1"
            pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
    layer { name: "relu1" type: "ReLU" bottom: "p1" top: "p1" }
    layer { name: "conv2" type: "Convolution" bottom: "p1" top: "c2"
            convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
    layer { name: "relu2" type: "ReLU" bottom: "c2" top: "c2" }
    layer { name: "pool2" type: "Pooling" bottom: "c2" top: "p2"
            pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
    layer { name: "ip" type: "InnerProduct" bottom: "p2" top: "ip"
            inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def run_chain() -> dict[str, torch.Tensor]:
    recaffe.set_random_seed(5)
    net = recaffe.Net(prototxt.parse_text(CHAIN, caffe_pb2.NetParameter()), recaffe.TRAIN)
    generator = torch.Generator().manual_seed(1)
    net.blobs["x"].data.copy_(torch.randn(4, 3, 12, 12, generator=generator))
    net.blobs["label"].data.copy_(torch.tensor([0.0, 3, 4, 1]))
    net.forward()
    net.backward()
    values = {f"{name}/data": blob.data.clone() for name, blob in net.blobs.items()}
    values |= {f"{name}/diff": blob.diff.clone() for name, blob in net.blobs.items()}
    for name, blobs in net.layer_params.items():
        values |= {f"{name}/{j}": blob.diff.clone() for j, blob in enumerate(blobs)}
    return values


def test_a_conv_pool_relu_chain_matches_row_major(monkeypatch: pytest.MonkeyPatch) -> None:
    """Held channels-last blobs read back as Caffe's row-major blobs, forward and backward."""
    shipped = run_chain()
    row_major_only(monkeypatch)
    plain = run_chain()
    assert shipped.keys() == plain.keys()
    for key, value in shipped.items():
        assert value.is_contiguous()
        torch.testing.assert_close(value, plain[key], rtol=1e-5, atol=1e-6, msg=key)


def test_store_copies_row_major_results_and_adopts_the_rest() -> None:
    from recaffe.blob import Blob

    blob = Blob((2, 4, 3, 3))
    view = blob.data  # a view of the row-major storage, kept across the stores
    row_major = torch.randn(2, 4, 3, 3)
    layout.store(blob, row_major)
    assert torch.equal(view, row_major)  # copied: the old view is current
    channels_last = torch.randn(2, 4, 3, 3).contiguous(memory_format=CL)
    layout.store(blob, channels_last)
    assert blob.strided_data() is channels_last  # adopted, no conversion
    assert torch.equal(blob.data, channels_last) and torch.equal(view, channels_last)
    layout.store(blob, channels_last, diff=True)
    assert blob.strided_diff() is channels_last


def test_output_reuses_the_blobs_memory_of_the_same_layout() -> None:
    from recaffe.blob import Blob

    blob = Blob((2, 4, 3, 3))
    channels_last = torch.randn(2, 4, 3, 3).contiguous(memory_format=CL)
    fresh = layout.output(blob, channels_last)  # the blob is row-major: new memory in the layout
    assert fresh.stride() == channels_last.stride() and fresh.data_ptr() != blob.data.data_ptr()
    layout.store(blob, fresh.copy_(channels_last))
    assert layout.output(blob, channels_last) is fresh  # held in that layout: written over next time
    row_major = torch.randn(2, 4, 3, 3)
    assert layout.output(blob, row_major).is_contiguous()  # another layout: new memory, no read back
    storage = blob.data  # read back row-major: from now on the storage itself is the output
    assert layout.output(blob, row_major).data_ptr() == storage.data_ptr()
    target = layout.output(blob, row_major, diff=True)
    layout.store(blob, target.copy_(row_major), diff=True)  # already the storage: nothing to copy
    assert target.data_ptr() == blob.diff.data_ptr() and torch.equal(blob.diff, row_major)
    blob.release_data()  # deploy mode: no memory until the next output, which is adopted as it is
    assert layout.output(blob, channels_last).stride() == channels_last.stride() and not blob.has_data


def test_lrn_tiles_cover_the_blob_once() -> None:
    """Pieces of the blob, whole images or bands of rows, each element in exactly one."""
    from recaffe.blob import Blob
    from recaffe.layers.vision import lrn

    for fields, shape in (("", (3, 8, 40, 7)), ("norm_region: WITHIN_CHANNEL", (3, 8, 40, 7)),
                          ("", (5, 2, 2, 2)), ("", (1, 4096, 33, 9))):
        param = prototxt.parse_text(f"lrn_param {{ {fields} }}", caffe_pb2.LayerParameter(type="LRN"))
        layer = lrn.LRNLayer(param)
        layer.setup([Blob(shape)], [Blob()])
        seen = torch.zeros(shape)
        for tile in layer._tiles(shape):
            seen[tile] += 1
        assert torch.equal(seen, torch.ones(shape)), (fields, shape)
