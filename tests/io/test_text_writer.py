"""Text format spelled as Caffe's C++ TextFormat writes it (SimpleFtoa/SimpleDtoa numbers)."""

from __future__ import annotations

import math
import struct

import pytest
from google.protobuf import text_format

from recaffe.io import text_writer
from recaffe.proto import caffe_pb2


def f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "1"), (2.0, "2"), (0.0, "0"), (-1.0, "-1"), (f32(0.1), "0.1"), (f32(1e-05), "1e-05"),
    (f32(0.00390625), "0.00390625"), (1e10, "1e+10"), (123456.0, "123456"), (1234567.0, "1234567"),
    (f32(0.1234567), "0.123456702"),  # six digits do not give the float back: nine, as C++ does
    (math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"),
])
def test_float_fields_use_simple_ftoa(value: float, text: str) -> None:
    assert text_writer.format_float(value) == text


@pytest.mark.parametrize(("value", "text"), [(1.0, "1"), (0.1, "0.1"), (0.1 + 0.2, "0.30000000000000004")])
def test_double_fields_use_simple_dtoa(value: float, text: str) -> None:
    assert text_writer.format_double(value) == text


def test_messages_read_back_identical_and_lay_out_as_protobuf_does() -> None:
    net = caffe_pb2.NetParameter(name='n\u00e9 "quoted"')
    layer = net.layer.add(name="ip", type="InnerProduct", bottom=["x"], top=["y"], phase=caffe_pb2.TEST)
    layer.param.add(lr_mult=1, decay_mult=0.5)
    layer.inner_product_param.num_output = 10
    layer.inner_product_param.bias_term = False
    layer.blobs.add(double_data=[0.1, 2.0], shape=caffe_pb2.BlobShape(dim=[2]))
    datum = caffe_pb2.Datum(channels=1, data=b"\x00\xff\n", float_data=[1.5])
    for message in (net, datum):
        text = text_writer.message_to_text(message)
        assert text_format.Parse(text, type(message)()) == message
        python = text_format.MessageToString(message)
        assert len(text.splitlines()) == len(python.splitlines())  # one line per field, same nesting
    text = text_writer.message_to_text(net)
    assert "  phase: TEST\n" in text and "    lr_mult: 1\n" in text and "    double_data: 2\n" in text
    assert "bias_term: false\n" in text and 'name: "n\u00e9 \\"quoted\\""\n' in text
