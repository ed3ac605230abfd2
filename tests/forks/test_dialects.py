"""Fork dialects: schemas merged from BVLC's, detection, lowering/raising, errors, binary reading."""

from __future__ import annotations

import pathlib

import pytest
import torch

import recaffe
from recaffe import forks
from recaffe.forks import catalog, generate, reading
from recaffe.io import prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS, UnknownTypeError

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "forks"
INPUT = 'input: "data" input_shape { dim: 1 dim: 2 dim: 7 dim: 7 }\n'
DENSENET_POOL = INPUT + (
    'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
    '  pooling_param { pool: MAX kernel_size: 2 stride: 2 ceil_mode: false } }\n'
    'layer { name: "q" type: "Pooling" bottom: "data" top: "q"\n'
    '  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')


def write(tmp_path: pathlib.Path, text: str, name: str = "net.prototxt") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", generate.DIALECT_NAMES)
def test_generated_schema_is_up_to_date(name: str) -> None:
    here = pathlib.Path(generate.__file__).parent / name
    merged = generate.merge((generate.PROTO_DIR / "caffe.proto").read_text(),
                            (here / f"{name}.proto").read_text(), f"recaffe.forks.{name}")
    committed = (here / f"caffe_{name}.proto").read_text()
    assert committed.split("\n", 2)[2] == merged, "run python -m recaffe.forks.generate"


def field(dialect: str, message: str, number: int) -> tuple[str, int]:
    fd = forks.get_dialect(dialect).pb2.DESCRIPTOR.message_types_by_name[message].fields_by_number[number]
    return fd.name, fd.type


def test_fork_field_numbers_are_the_forks() -> None:
    assert [field("ssd", "LayerParameter", n)[0] for n in (202, 203, 204, 206)] == [
        "permute_param", "prior_box_param", "detection_output_param", "norm_param"]
    assert field("densenet", "PoolingParameter", 13) == ("ceil_mode", 8)  # bool, where BVLC: round_mode
    assert field("pspnet", "LayerParameter", 143)[0] == "interp_param"  # BVLC: input_param
    assert field("pspnet", "LayerParameter", 152)[0] == "bn_param"


def test_bvlc_schema_and_registry_never_show_a_fork_field() -> None:
    forks.dialects()
    assert "prior_box_param" not in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    assert caffe_pb2.PoolingParameter.DESCRIPTOR.fields_by_number[13].name == "round_mode"
    assert "PriorBox" not in LAYERS.names() and "PriorBox" in LAYERS.names("ssd")
    with pytest.raises(UnknownTypeError):
        LAYERS.get("PriorBox")
    assert LAYERS.get("Pooling", "ssd") is LAYERS.get("Pooling")  # a dialect falls back to BVLC's layers


def test_bvlc_prototxt_reads_as_before(tmp_path: pathlib.Path) -> None:
    text = 'layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { kernel_size: 2 } }\n'
    param = prototxt.read_net_param(write(tmp_path, text))
    assert param == prototxt.parse_text(text, caffe_pb2.NetParameter())
    assert all(forks.layer_dialect(layer) is None for layer in param.layer)


def test_densenet_ceil_mode_is_detected_and_maps_to_round_mode(tmp_path: pathlib.Path) -> None:
    net = Net(str(write(tmp_path, DENSENET_POOL)), recaffe.TEST)
    assert tuple(net.blobs["p"].shape) == (1, 2, 3, 3)  # ceil_mode: false = FLOOR
    assert tuple(net.blobs["q"].shape) == (1, 2, 4, 4)  # the fork's default, ceil
    layer = prototxt.read_net_param(write(tmp_path, DENSENET_POOL)).layer[1]
    assert layer.pooling_param.round_mode == caffe_pb2.PoolingParameter.FLOOR


def test_named_dialect_and_default(tmp_path: pathlib.Path) -> None:
    path = write(tmp_path, DENSENET_POOL)
    assert Net(str(path), recaffe.TEST, dialect="densenet").blobs["p"].shape == (1, 2, 3, 3)
    with pytest.raises(reading.UnknownFieldsError, match="ceil_mode.*DenseNet.*--dialect densenet"):
        Net(str(path), recaffe.TEST, dialect="bvlc")
    with pytest.raises(reading.UnknownFieldsError, match='"ceil_mode" of PoolingParameter: .*densenet'):
        Net(str(path), recaffe.TEST, dialect="ssd")
    forks.set_default_dialect("bvlc")
    try:
        with pytest.raises(reading.UnknownFieldsError):
            prototxt.read_net_param(path)
    finally:
        forks.set_default_dialect(None)
    with pytest.raises(ValueError, match="unknown dialect 'nope'.*ssd"):
        forks.set_default_dialect("nope")


def test_every_unknown_field_and_type_is_listed_at_once(tmp_path: pathlib.Path) -> None:
    text = INPUT + (
        'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
        '  pooling_param { kernel_size: 2 ceil_mode: false bogus: 3 } }\n'
        'layer { name: "x" type: "PriorBox" bottom: "data" top: "x" prior_box_param { min_size: 3 } }\n'
        'layer { name: "y" type: "Frobnicate" bottom: "data" top: "y" roi_pooling_param { pooled_h: 3 } }\n')
    path = write(tmp_path, text)
    with pytest.raises(reading.UnknownFieldsError) as info:
        prototxt.read_net_param(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 6 unknown fields/layer types for BVLC Caffe:"
    assert lines[1].startswith(f"{path}:3:34: cannot parse as NetParameter: ")
    assert 'unknown field "ceil_mode" of PoolingParameter' in lines[1]
    assert "--dialect densenet" in lines[1]
    assert '"bogus"' in lines[2] and "not in BVLC Caffe or any fork" in lines[2]
    assert "prior_box_param is from the SSD fork" in lines[3] and "--dialect ssd" in lines[3]
    assert "roi_pooling_param is from the Fast/Faster R-CNN fork" in lines[4]
    assert 'layer type "PriorBox"' in lines[5] and "--dialect ssd" in lines[5]
    assert 'layer type "Frobnicate"' in lines[6]
    assert "min_size" not in str(info.value)  # fields inside an unknown one are not listed again


def test_syntax_errors_still_name_line_and_column(tmp_path: pathlib.Path) -> None:
    with pytest.raises(prototxt.ProtoFileError, match=r":2:\d+: cannot parse as NetParameter"):
        prototxt.read_net_param(write(tmp_path, 'name: "x"\nlayer { name: }\n'))


def test_ambiguous_prototxt_asks_for_a_dialect(monkeypatch: pytest.MonkeyPatch) -> None:
    ssd = forks.get_dialect("ssd")
    monkeypatch.setattr(catalog, "dialects", lambda: [ssd, ssd])
    with pytest.raises(reading.UnknownFieldsError, match="more than one fork dialect \\(ssd, ssd\\)"):
        prototxt.read_net_param(FIXTURES / "tiny_ssd.prototxt")


def test_lowered_layer_carries_fork_fields_through_copies_and_raises_back() -> None:
    ssd = forks.get_dialect("ssd")
    text = ('name: "pb" type: "PriorBox" bottom: "f" bottom: "d" top: "p" '
            'prior_box_param { min_size: 3 max_size: 9 aspect_ratio: 2 variance: 0.1 step: 8 } '
            'param { lr_mult: 0 } include { phase: TEST }')
    fork_layer = prototxt.parse_text(text, ssd.layer_parameter())
    lowered = ssd.lower_layer(fork_layer)
    assert isinstance(lowered, caffe_pb2.LayerParameter) and lowered.include[0].phase == caffe_pb2.TEST
    copy = caffe_pb2.LayerParameter()
    copy.CopyFrom(lowered)
    assert forks.layer_dialect(copy) == "ssd"
    assert ssd.fork_param(copy).prior_box_param == fork_layer.prior_box_param
    assert ssd.raise_layer(copy) == fork_layer


def test_fork_caffemodel_reads_back_with_every_fork_param(tmp_path: pathlib.Path) -> None:
    ssd = forks.get_dialect("ssd")
    original = prototxt.parse_text((FIXTURES / "tiny_ssd.prototxt").read_text(), ssd.net_parameter())
    blob = original.layer[0].blobs.add()
    blob.shape.dim.extend([2])
    blob.data.extend([1.5, -2.0])
    path = tmp_path / "ssd.caffemodel"
    prototxt.write_binary(path, original)
    assert ssd.raise_net(reading.read_net_binary(path, "ssd")) == original
    upgraded = prototxt.read_net_weights(path, dialect="ssd")  # input fields -> an Input layer, as Caffe
    nms = ssd.fork_param(upgraded.layer[-1]).detection_output_param.nms_param
    assert (nms.nms_threshold, nms.top_k) == (pytest.approx(0.45), 100)


def test_binary_reader_follows_the_dialect_where_numbers_collide(tmp_path: pathlib.Path) -> None:
    densenet = forks.get_dialect("densenet")
    net = densenet.net_parameter()
    pool = net.layer.add(name="p", type="Pooling")
    pool.pooling_param.ceil_mode = False  # field 13 = 0, which BVLC reads as round_mode CEIL
    path = tmp_path / "densenet.caffemodel"
    prototxt.write_binary(path, net)
    P = caffe_pb2.PoolingParameter
    assert prototxt.read_net_weights(path).layer[0].pooling_param.round_mode == P.CEIL
    assert prototxt.read_net_weights(path, dialect="densenet").layer[0].pooling_param.round_mode == P.FLOOR
    assert densenet.raise_net(prototxt.read_net_weights(path, dialect="densenet")) == net

    pspnet = forks.get_dialect("pspnet")
    net = pspnet.net_parameter()
    net.layer.add(name="i", type="Interp").interp_param.zoom_factor = 8  # 143: BVLC's input_param
    prototxt.write_binary(path, net)
    lowered = prototxt.read_net_weights(path, dialect="pspnet")
    assert not lowered.layer[0].HasField("input_param")
    assert pspnet.fork_param(lowered.layer[0]).interp_param.zoom_factor == 8


def test_net_save_then_raise_gives_the_forks_caffemodel(tmp_path: pathlib.Path) -> None:
    recaffe.set_random_seed(1)
    net = Net(str(FIXTURES / "tiny_ssd.prototxt"), recaffe.TEST)
    path = tmp_path / "tiny.caffemodel"
    net.save(str(path))
    again = prototxt.read_binary(path, caffe_pb2.NetParameter())
    raised = forks.get_dialect("ssd").raise_net(again)
    assert raised.layer[-1].detection_output_param.keep_top_k == 20
    other = Net(str(FIXTURES / "tiny_ssd.prototxt"), recaffe.TEST, weights_file=str(path))
    mine = other.layer_by_name("conv1_norm").blobs[0].data
    theirs = net.layer_by_name("conv1_norm").blobs[0].data
    assert torch.equal(mine, theirs) and float(mine[0]) == 20
