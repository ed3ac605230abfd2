"""caffe.coord_map: per-layer maps, composition, inversion, walks between tops, crop()."""

from __future__ import annotations

import numpy as np
import pytest

import caffe
from caffe import coord_map as cm
from caffe import layers as L
from caffe import params as P


def conv_pool_deconv(ks=3, stride=1, pad=0, pool=2, dstride=2, dpad=0) -> caffe.NetSpec:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=ks, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=2 * dstride, stride=dstride, pad=dpad)
    return n


def test_single_layer_maps() -> None:
    n = conv_pool_deconv(ks=5, stride=2, pad=1)
    axis, a, b = cm.coord_map(n.conv.fn)
    assert axis == 1 and a == 0.5 and b == (1 - 2) / 2
    assert cm.coord_map(n.deconv.fn) == (1, 2, 1.5)
    assert cm.coord_map(L.ReLU(n.conv).fn) == (None, 1, 0)
    dilated = L.Convolution(n.data, convolution_param=dict(kernel_size=[3], dilation=[2]))
    assert cm.coord_map(dilated.fn)[2] == -2.0  # extent (3-1)·2+1 = 5
    crop_axis, crop_a, crop_b = cm.coord_map(L.Crop(n.deconv, n.data, axis=2, offset=[3]).fn)
    assert (crop_axis, crop_a, list(crop_b)) == (1, 1, [-3])
    with pytest.raises(cm.UndefinedMapException):
        cm.coord_map(L.InnerProduct(n.conv, num_output=3).fn)
    with pytest.raises(AssertionError, match="legacy"):
        cm.coord_map(L.Pooling(n.conv, kernel_h=2, kernel_w=2).fn)


def test_compose_and_inverse() -> None:
    assert cm.compose((None, 1, 0), (1, 2, 3)) == (1, 2, 3)
    assert cm.compose((1, 0.5, 1), (None, 1, 0)) == (1, 0.5, 1)
    assert cm.compose((1, 2, 1), (1, 3, 4)) == (1, 6, 9)
    assert cm.inverse((1, 2, 4)) == (1, 0.5, -2)
    with pytest.raises(cm.AxisMismatchException):
        cm.compose((1, 1, 0), (2, 1, 0))


def test_conv_pool_deconv_round_trips() -> None:
    n = conv_pool_deconv()
    assert cm.coord_map_from_to(n.deconv, n.data) == (1, 1, 0)
    n = conv_pool_deconv(pool=4, dstride=4)
    assert cm.coord_map_from_to(n.deconv, n.data) == (1, 1, -1)
    for pad in (1, 3):
        padded = conv_pool_deconv(pad=pad)
        assert cm.coord_map_from_to(padded.deconv, padded.data)[2] == -pad
        padded = conv_pool_deconv(dpad=pad)
        assert cm.coord_map_from_to(padded.deconv, padded.data)[2] == pad
        padded = conv_pool_deconv(pad=pad, dpad=pad)
        assert cm.coord_map_from_to(padded.deconv, padded.data)[2] == 0
    n = conv_pool_deconv()
    n.relu = L.ReLU(n.deconv)
    assert cm.coord_map_from_to(n.relu, n.data) == (1, 1, 0)


def test_anisotropic_and_nd_kernels() -> None:
    n = conv_pool_deconv(ks=[3, 5], stride=[1, 2], pad=[0, 10])
    _, a, b = cm.coord_map_from_to(n.deconv, n.data)
    iso = conv_pool_deconv(ks=5, stride=2, pad=10)
    _, a5, b5 = cm.coord_map_from_to(iso.deconv, iso.data)
    assert a[1] == a5 and b[1] == b5
    nd = caffe.NetSpec()
    nd.data = L.Input(shape=dict(dim=[2, 3, 20, 20, 20]))
    nd.conv = L.Convolution(nd.data, num_output=4, kernel_size=[3, 3, 3], pad=[0, 1, 2])
    _, a, b = cm.coord_map_from_to(nd.conv, nd.data)
    assert np.all(a == 1) and list(b) == [1, 0, -1]


def test_crop_helper_and_its_checks() -> None:
    n = conv_pool_deconv(pad=2)  # output 2 px larger each side
    crop = cm.crop(n.deconv, n.data)
    p = crop.fn.params["crop_param"]
    assert p == {"axis": 2, "offset": [2]}
    n.crop = crop
    assert cm.coord_map_from_to(n.crop, n.data) == (1, 1, 0)
    for spec, message in ((conv_pool_deconv(pool=3, dstride=2), "scale mismatch"),
                          (conv_pool_deconv(dpad=10), "negative offset"),
                          (conv_pool_deconv(ks=2), "noninteger")):
        with pytest.raises(AssertionError, match=message):
            cm.crop(spec.deconv, spec.data)


def test_unconnected_tops() -> None:
    n = conv_pool_deconv()
    n.ip = L.InnerProduct(n.deconv, num_output=10)
    with pytest.raises(RuntimeError, match="Could not compute map"):
        cm.coord_map_from_to(n.ip, n.data)
