from __future__ import annotations

import pytest
import torch

from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layers.vision.crop import CropLayer
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_case import LayerCase


class CropCase(LayerCase):
    layer_type = "Crop"
    check_bottoms = [0]  # bottom[1] only gives a shape

    def reference(self, bottoms, blobs, param):
        x, ref = bottoms
        p = param.crop_param
        axis = p.axis % x.dim()
        offsets = list(p.offset) or [0]
        index = [slice(None)] * axis
        for i in range(axis, x.dim()):
            o = offsets[0] if len(offsets) == 1 else offsets[i - axis]
            index.append(slice(o, o + ref.shape[i]))
        return (x[tuple(index)],)


class TestCrop(CropCase):
    bottom_shapes = [(2, 4, 5, 4), (2, 3, 4, 2)]  # Caffe's test shapes
    params = ["", "crop_param { axis: 0 }", "crop_param { axis: -1 offset: 2 }",
              "crop_param { axis: 1 offset: 1 }", "crop_param { axis: 1 offset: 0 offset: 1 offset: 2 }"]


class TestCrop5D(CropCase):
    bottom_shapes = [(2, 4, 5, 4, 5), (2, 3, 4, 2, 3)]
    params = ["crop_param { axis: 2 offset: 1 offset: 0 offset: 2 }", "crop_param { offset: 1 }"]


def make(fields: str, *shapes: tuple[int, ...]) -> tuple[CropLayer, list[Blob], list[Blob]]:
    param = prototxt.parse_text(fields, caffe_pb2.LayerParameter(name="crop", type="Crop"))
    layer = CropLayer(param)
    bottom, top = [Blob(shape) for shape in shapes], [Blob()]
    layer.setup(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize(("fields", "expected"), [
    ("crop_param { axis: 0 }", (2, 3, 4, 2)),  # TestSetupShapeAll
    ("", (2, 4, 4, 2)),  # TestSetupShapeDefault: axis 2
    ("crop_param { axis: -1 }", (2, 4, 5, 2)),  # TestSetupShapeNegativeIndexing
])
def test_shapes(fields: str, expected: tuple[int, ...]) -> None:
    _, _, top = make(fields, (2, 4, 5, 4), (2, 3, 4, 2))
    assert top[0].shape == expected


def test_uncropped_axes_may_differ() -> None:
    """Caffe's TestDimensionsCheck: the reference may have more channels when they are kept."""
    _, _, top = make("", (2, 4, 5, 4), (2, 5, 4, 2))
    assert top[0].shape == (2, 4, 4, 2)


def test_values_and_backward() -> None:
    layer, bottom, top = make("crop_param { axis: 2 offset: 1 offset: 2 }", (1, 1, 4, 5), (1, 1, 2, 2))
    bottom[0].data.copy_(torch.arange(20.0).view(1, 1, 4, 5))
    bottom[1].diff.fill_(3.0)
    layer.run_forward(bottom, top)
    assert top[0].data[0, 0].tolist() == [[7, 8], [12, 13]]
    top[0].diff.fill_(1.0)
    bottom[0].diff.fill_(5.0)
    layer.run_backward(top, [True, True], bottom)
    expected = torch.zeros(4, 5)
    expected[1:3, 2:4] = 1
    assert torch.equal(bottom[0].diff[0, 0], expected)
    assert bottom[1].diff.eq(3.0).all()  # Caffe writes nothing to the reference's diff


@pytest.mark.parametrize(("fields", "shapes", "message"), [
    ("crop_param { offset: 1 offset: 1 offset: 1 }", [(2, 4, 5, 4), (2, 3, 4, 2)], "number of offset"),
    ("crop_param { offset: 2 }", [(2, 4, 5, 4), (2, 3, 4, 2)], "dimension 2 is out-of-bounds"),
    ("crop_param { axis: 4 }", [(2, 4, 5, 4), (2, 3, 4, 2)], "axis 4 out of range"),
    ("", [(2, 4, 5, 4), (2, 3, 4)], "fewer axes"),
])
def test_invalid_crops_are_refused(fields: str, shapes, message: str) -> None:
    with pytest.raises(ValueError, match=message):  # LayerError, or the blob's axis check
        make(fields, *shapes)
