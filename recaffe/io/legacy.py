"""Legacy net formats and Caffe's upgrades from them (``util/upgrade_proto.cpp``).

* V0: ``layers { layer { name type <flat fields> } bottom top }`` with lower-case type names
  ("conv", "innerproduct") and separate ``padding`` layers.
* V1: ``layers { name type: ENUM <typed *_param> blobs_lr weight_decay }``.
* current: ``layer { name type: "String" param { lr_mult decay_mult } }``.

Where Caffe logs an error and carries on (a field the layer type does not take), these
functions log a warning naming the layer and return False; where Caffe dies, they raise an
:class:`UpgradeError` naming the file and the layer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from google.protobuf import message

from recaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

V1 = caffe_pb2.V1LayerParameter

# UpgradeV0LayerType: V0's lower-case names -> the V1 enum.
V0_TYPES: dict[str, caffe_pb2.V1LayerParameter.LayerType.ValueType] = {
    "accuracy": V1.ACCURACY,
    "bnll": V1.BNLL,
    "concat": V1.CONCAT,
    "conv": V1.CONVOLUTION,
    "data": V1.DATA,
    "dropout": V1.DROPOUT,
    "euclidean_loss": V1.EUCLIDEAN_LOSS,
    "flatten": V1.FLATTEN,
    "hdf5_data": V1.HDF5_DATA,
    "hdf5_output": V1.HDF5_OUTPUT,
    "im2col": V1.IM2COL,
    "images": V1.IMAGE_DATA,
    "infogain_loss": V1.INFOGAIN_LOSS,
    "innerproduct": V1.INNER_PRODUCT,
    "lrn": V1.LRN,
    "multinomial_logistic_loss": V1.MULTINOMIAL_LOGISTIC_LOSS,
    "pool": V1.POOLING,
    "relu": V1.RELU,
    "sigmoid": V1.SIGMOID,
    "softmax": V1.SOFTMAX,
    "softmax_loss": V1.SOFTMAX_LOSS,
    "split": V1.SPLIT,
    "tanh": V1.TANH,
    "window_data": V1.WINDOW_DATA,
}

# UpgradeV1LayerType: every V1 enum value -> the registered type string ("" for NONE).
V1_TYPE_NAMES: dict[int, str] = {
    V1.NONE: "",
    V1.ABSVAL: "AbsVal",
    V1.ACCURACY: "Accuracy",
    V1.ARGMAX: "ArgMax",
    V1.BNLL: "BNLL",
    V1.CONCAT: "Concat",
    V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    V1.CONVOLUTION: "Convolution",
    V1.DECONVOLUTION: "Deconvolution",
    V1.DATA: "Data",
    V1.DROPOUT: "Dropout",
    V1.DUMMY_DATA: "DummyData",
    V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    V1.ELTWISE: "Eltwise",
    V1.EXP: "Exp",
    V1.FLATTEN: "Flatten",
    V1.HDF5_DATA: "HDF5Data",
    V1.HDF5_OUTPUT: "HDF5Output",
    V1.HINGE_LOSS: "HingeLoss",
    V1.IM2COL: "Im2col",
    V1.IMAGE_DATA: "ImageData",
    V1.INFOGAIN_LOSS: "InfogainLoss",
    V1.INNER_PRODUCT: "InnerProduct",
    V1.LRN: "LRN",
    V1.MEMORY_DATA: "MemoryData",
    V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    V1.MVN: "MVN",
    V1.POOLING: "Pooling",
    V1.POWER: "Power",
    V1.RELU: "ReLU",
    V1.SIGMOID: "Sigmoid",
    V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    V1.SILENCE: "Silence",
    V1.SOFTMAX: "Softmax",
    V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    V1.SPLIT: "Split",
    V1.SLICE: "Slice",
    V1.TANH: "TanH",
    V1.WINDOW_DATA: "WindowData",
    V1.THRESHOLD: "Threshold",
}

# V0 fields that belong to a typed param: field -> {V0 type: (V1 *_param, field there)}.
_CONV, _IP, _POOL = "convolution_param", "inner_product_param", "pooling_param"
_DATA, _HDF5, _IMAGES, _WINDOW = "data_param", "hdf5_data_param", "image_data_param", "window_data_param"
_V0_TYPED_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "num_output": {"conv": (_CONV, "num_output"), "innerproduct": (_IP, "num_output")},
    "biasterm": {"conv": (_CONV, "bias_term"), "innerproduct": (_IP, "bias_term")},
    "weight_filler": {"conv": (_CONV, "weight_filler"), "innerproduct": (_IP, "weight_filler")},
    "bias_filler": {"conv": (_CONV, "bias_filler"), "innerproduct": (_IP, "bias_filler")},
    "pad": {"conv": (_CONV, "pad"), "pool": (_POOL, "pad")},
    "kernelsize": {"conv": (_CONV, "kernel_size"), "pool": (_POOL, "kernel_size")},
    "group": {"conv": (_CONV, "group")},
    "stride": {"conv": (_CONV, "stride"), "pool": (_POOL, "stride")},
    "pool": {"pool": (_POOL, "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {
        "data": (_DATA, "source"),
        "hdf5_data": (_HDF5, "source"),
        "images": (_IMAGES, "source"),
        "window_data": (_WINDOW, "source"),
        "infogain_loss": ("infogain_loss_param", "source"),
    },
    "batchsize": {
        "data": (_DATA, "batch_size"),
        "hdf5_data": (_HDF5, "batch_size"),
        "images": (_IMAGES, "batch_size"),
        "window_data": (_WINDOW, "batch_size"),
    },
    "rand_skip": {"data": (_DATA, "rand_skip"), "images": (_IMAGES, "rand_skip")},
    "shuffle_images": {"images": (_IMAGES, "shuffle")},
    "new_height": {"images": (_IMAGES, "new_height")},
    "new_width": {"images": (_IMAGES, "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": (_WINDOW, "fg_threshold")},
    "det_bg_threshold": {"window_data": (_WINDOW, "bg_threshold")},
    "det_fg_fraction": {"window_data": (_WINDOW, "fg_fraction")},
    "det_context_pad": {"window_data": (_WINDOW, "context_pad")},
    "det_crop_mode": {"window_data": (_WINDOW, "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", "")},
}
# V0 fields that move into transform_param whatever the layer type.
_V0_TRANSFORM_FIELDS = {
    "scale": "scale", "meanfile": "mean_file", "cropsize": "crop_size", "mirror": "mirror",
}

# NetNeedsDataUpgrade / UpgradeNetDataTransformation: V1 data layers and their typed param.
_V1_DATA_PARAMS = {V1.DATA: _DATA, V1.IMAGE_DATA: _IMAGES, V1.WINDOW_DATA: _WINDOW}
_DATA_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")

# Every typed V1 param (transform_param and loss_param included) has a same-named LayerParameter field.
_V1_TYPED_PARAMS = tuple(f.name for f in V1.DESCRIPTOR.fields if f.name.endswith("_param"))


class UpgradeError(ValueError):
    """A legacy net cannot be upgraded; the message names the file and the layer."""


# ================================================================ detection
def needs_v0_upgrade(param: caffe_pb2.NetParameter) -> bool:
    return any(layer.HasField("layer") for layer in param.layers)


def needs_v1_upgrade(param: caffe_pb2.NetParameter) -> bool:
    return len(param.layers) > 0


def needs_data_upgrade(param: caffe_pb2.NetParameter) -> bool:
    """A V1 Data/ImageData/WindowData layer still sets scale/mean_file/crop_size/mirror itself."""
    for layer in param.layers:
        typed = _V1_DATA_PARAMS.get(layer.type)
        if typed and any(getattr(layer, typed).HasField(f) for f in _DATA_TRANSFORM_FIELDS):
            return True
    return False


# ================================================================ V0 -> V1
def upgrade_v0_net(param: caffe_pb2.NetParameter, source: str = "<net>") -> bool:
    """V0 layers -> V1 layers in place (UpgradeV0Net); False if some field had to be dropped.

    As in Caffe, only the net's name, layers, ``input``, ``input_dim`` and ``force_backward``
    are kept.
    """
    padded = upgrade_v0_padding_layers(param, source)
    param.Clear()
    if padded.HasField("name"):
        param.name = padded.name
    compatible = True
    for v0_layer in padded.layers:
        compatible &= upgrade_v0_layer(v0_layer, param.layers.add(), source)
    param.input.extend(padded.input)
    param.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        param.force_backward = padded.force_backward
    return compatible


def upgrade_v0_padding_layers(
    param: caffe_pb2.NetParameter, source: str = "<net>"
) -> caffe_pb2.NetParameter:
    """A copy of ``param`` with each V0 ``padding`` layer folded into the conv/pool it feeds.

    The consumer takes the padding layer's ``pad`` and its bottom. Idempotent.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layers[:]
    last_producer: dict[str, int] = {name: -1 for name in param.input}
    for i, connection in enumerate(param.layers):
        v0 = connection.layer
        if v0.type != "padding":
            out.layers.add().CopyFrom(connection)
        for j, blob_name in enumerate(connection.bottom):
            if blob_name not in last_producer:
                raise UpgradeError(f"{source}: unknown bottom blob {blob_name!r} of V0 layer {v0.name!r}")
            producer_id = last_producer[blob_name]
            producer = param.layers[producer_id] if producer_id >= 0 else None
            if producer is None or producer.layer.type != "padding":
                continue
            _check_padding_use(connection, producer, source)
            out.layers[-1].layer.pad = producer.layer.pad
            out.layers[-1].bottom[j] = producer.bottom[0]
        for blob_name in connection.top:
            last_producer[blob_name] = i
    return out


def _check_padding_use(
    consumer: caffe_pb2.V1LayerParameter, padding: caffe_pb2.V1LayerParameter, source: str
) -> None:
    where = f"{source}: V0 padding layer {padding.layer.name!r} feeding layer {consumer.layer.name!r}"
    if consumer.layer.type not in ("conv", "pool"):
        raise UpgradeError(f"{where}: padding can only feed a conv or pool layer, "
                           f"not {consumer.layer.type!r}")
    if len(consumer.bottom) != 1:
        raise UpgradeError(f"{where}: the padded layer must take a single bottom, "
                           f"got {len(consumer.bottom)}")
    if len(padding.bottom) != 1 or len(padding.top) != 1:
        raise UpgradeError(f"{where}: the padding layer must have one bottom and one top, got "
                           f"{len(padding.bottom)} and {len(padding.top)}")


def upgrade_v0_layer(
    connection: caffe_pb2.V1LayerParameter, out: caffe_pb2.V1LayerParameter, source: str = "<net>"
) -> bool:
    """One V0 layer -> V1 (UpgradeV0LayerParameter); False if a field did not fit its type."""
    out.Clear()
    out.bottom.extend(connection.bottom)
    out.top.extend(connection.top)
    if not connection.HasField("layer"):
        return True
    v0 = connection.layer
    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_TYPES:
            raise UpgradeError(f"{source}: V0 layer {v0.name!r} has unknown type {v0.type!r} "
                               f"(known: {', '.join(sorted(V0_TYPES))})")
        out.type = V0_TYPES[v0.type]
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    compatible = True
    for field, targets in _V0_TYPED_FIELDS.items():
        if not v0.HasField(field):  # type: ignore[arg-type]  # names from a table
            continue
        if v0.type not in targets:
            log.warning("%s: V0 layer %r: parameter %s does not apply to layer type %r; dropped",
                        source, v0.name, field, v0.type)
            compatible = False
            continue
        typed_param, target = targets[v0.type]
        value = getattr(v0, field)
        if field == "pool":
            value = caffe_pb2.PoolingParameter.PoolMethod.Value(v0.PoolMethod.Name(value))
        _set_field(getattr(out, typed_param), target, value)
    for field, target in _V0_TRANSFORM_FIELDS.items():
        if v0.HasField(field):  # type: ignore[arg-type]  # names from a table
            setattr(out.transform_param, target, getattr(v0, field))
    return compatible


def _set_field(msg: message.Message, field: str, value: object) -> None:
    """Set a scalar, append to a repeated field, or copy a message; ``field`` "" means ``msg`` itself."""
    if not field:
        msg.CopyFrom(value)  # type: ignore[arg-type]
        return
    descriptor = msg.DESCRIPTOR.fields_by_name[field]
    if descriptor.is_repeated:
        getattr(msg, field).append(value)
    elif descriptor.message_type is not None:
        getattr(msg, field).CopyFrom(value)
    else:
        setattr(msg, field, value)


# ================================================================ data transformation
def upgrade_data_transformation(param: caffe_pb2.NetParameter) -> None:
    """Move V1 data layers' scale/mean_file/crop_size/mirror into ``transform_param``."""
    for layer in param.layers:
        typed_name = _V1_DATA_PARAMS.get(layer.type)
        if typed_name is None:
            continue
        typed = getattr(layer, typed_name)
        typed.SetInParent()  # Caffe's mutable_*() marks both messages present
        layer.transform_param.SetInParent()
        for field in _DATA_TRANSFORM_FIELDS:
            if typed.HasField(field):
                setattr(layer.transform_param, field, getattr(typed, field))
                typed.ClearField(field)


# ================================================================ V1 -> current
def upgrade_v1_net(param: caffe_pb2.NetParameter, source: str = "<net>") -> bool:
    """V1 ``layers`` -> ``layer`` in place (UpgradeV1Net); False if some layer was not fully upgraded."""
    _refuse_mixed(param, source)
    compatible = True
    for i, v1 in enumerate(param.layers):
        if not upgrade_v1_layer(v1, param.layer.add(), source):
            log.warning("%s: upgrade of V1 layer %d (%r) was incomplete", source, i, v1.name)
            compatible = False
    del param.layers[:]
    return compatible


def _refuse_mixed(param: caffe_pb2.NetParameter, source: str) -> None:
    if len(param.layer) and len(param.layers):
        raise UpgradeError(
            f"{source}: the net has both 'layer' and 'layers' fields; refusing to upgrade. Write "
            f"every layer in the current format, layer {{ type: 'InnerProduct' ... }}, not "
            f"layers {{ type: INNER_PRODUCT ... }} (first V1 layer: {param.layers[0].name!r})"
        )


def upgrade_v1_layer(
    v1: caffe_pb2.V1LayerParameter, out: caffe_pb2.LayerParameter, source: str = "<net>"
) -> bool:
    """One V1 layer -> LayerParameter (UpgradeV1LayerParameter); False if it still held a V0 layer."""
    out.Clear()
    out.bottom.extend(v1.bottom)
    out.top.extend(v1.top)
    if v1.HasField("name"):
        out.name = v1.name
    out.include.extend(v1.include)
    out.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        out.type = V1_TYPE_NAMES[v1.type]
    out.blobs.extend(v1.blobs)
    for i, name in enumerate(v1.param):
        _param_spec(out, i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        _param_spec(out, i).share_mode = caffe_pb2.ParamSpec.DimCheckMode.Value(V1.DimCheckMode.Name(mode))
    for i, lr in enumerate(v1.blobs_lr):
        _param_spec(out, i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        _param_spec(out, i).decay_mult = decay
    out.loss_weight.extend(v1.loss_weight)
    for name in _V1_TYPED_PARAMS:
        if v1.HasField(name):  # type: ignore[arg-type]  # names from a table
            getattr(out, name).CopyFrom(getattr(v1, name))
    if v1.HasField("layer"):
        log.warning("%s: V1 layer %r also holds a V0 layer definition; ignored", source, v1.name)
        return False
    return True


def _param_spec(layer: caffe_pb2.LayerParameter, index: int) -> caffe_pb2.ParamSpec:
    while len(layer.param) <= index:
        layer.param.add()
    return layer.param[index]


# ================================================================ weights without upgrading
def trained_layers(
    param: caffe_pb2.NetParameter, source: str = "<net>"
) -> Iterator[tuple[str, Sequence[caffe_pb2.BlobProto]]]:
    """``(layer name, blobs)`` of a weights NetParameter in any format, blobs not copied.

    Gives the names and blobs the V0/V1 upgrades would produce, so loading a large legacy
    ``.caffemodel`` needs no second copy of its weights.
    """
    if not len(param.layers):
        for layer in param.layer:
            yield layer.name, layer.blobs
        return
    if needs_v0_upgrade(param):  # the V0 upgrade drops 'layer' entries and padding layers
        for connection in param.layers:
            if connection.layer.type != "padding":
                yield connection.layer.name, connection.layer.blobs
        return
    _refuse_mixed(param, source)
    for v1 in param.layers:
        yield v1.name, v1.blobs
