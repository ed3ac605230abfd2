"""Python layers (type "Python") in nets, through caffe.Net: the layers are defined here and
loaded by module name, as pycaffe does."""

from __future__ import annotations

import pytest

import caffe
from recaffe.layers.utility.python import PythonLayerError

MODULE = "tests.pycaffe.test_python_layer"


class TimesParam(caffe.Layer):
    """top = k · bottom, k = float(param_str) (10 by default)."""

    def setup(self, bottom, top):
        self.k = float(self.param_str or 10)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.k * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = self.k * top[0].diff


class LearnedOffset(caffe.Layer):
    """top = bottom + c, with a learnable scalar c (a blob added in setup)."""

    def setup(self, bottom, top):
        if len(self.blobs) == 0:
            self.blobs.add_blob(1)
            self.blobs[0].data[...] = 0.5

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data + self.blobs[0].data[0]

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += top[0].diff.sum()
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff


class PhaseAndParam(caffe.Layer):
    """A scalar top holding the phase the layer saw; param_str is recorded."""

    def setup(self, bottom, top):
        self.seen = (self.phase, self.param_str)

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase


class FailsInSetup(caffe.Layer):
    def setup(self, bottom, top):
        raise ValueError("bad python_param")


class OpensAMissingFile(caffe.Layer):
    def setup(self, bottom, top):
        open(self.param_str)  # noqa: SIM115


class FailsInForward(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        raise KeyError("broken")


class NotALayer:
    def __init__(self, param):
        pass


def python_layer(name: str, cls: str, bottom: str | None, top: str, param_str: str = "") -> str:
    bottom_field = f'bottom: "{bottom}"' if bottom else ""
    return (f'layer {{ name: "{name}" type: "Python" {bottom_field} top: "{top}" '
            f'python_param {{ module: "{MODULE}" layer: "{cls}" param_str: "{param_str}" }} }}\n')


CHAIN = ('name: "chain" force_backward: true\ninput: "data" input_shape { dim: 2 dim: 3 dim: 4 }\n'
         + python_layer("one", "TimesParam", "data", "one")
         + python_layer("two", "TimesParam", "one", "two", "2")
         + python_layer("three", "TimesParam", "two", "three", "0.5"))


def test_forward_backward_through_a_chain(write_net) -> None:
    net = caffe.Net(write_net(CHAIN), caffe.TRAIN)
    net.blobs["data"].data[...] = 3.0
    net.forward()
    assert (net.blobs["three"].data == 30.0).all()
    net.blobs["three"].diff[...] = 2.0
    net.backward()
    assert (net.blobs["data"].diff == 20.0).all()


def test_reshape_runs_every_forward(write_net) -> None:
    net = caffe.Net(write_net(CHAIN), caffe.TRAIN)
    net.blobs["data"].reshape(5, 1, 2)
    net.forward()
    assert net.blobs["three"].shape == [5, 1, 2]


def test_layers_are_the_users_objects(write_net) -> None:
    net = caffe.Net(write_net(CHAIN), caffe.TRAIN)
    layer = net.layer_dict["two"]
    assert isinstance(layer, TimesParam)
    assert layer is net.layers[2]
    assert layer.k == 2.0 and layer.param_str == "2"
    assert layer.type == "Python"


def test_phase_and_param_str_are_set_before_setup(write_net) -> None:
    path = write_net('name: "p"\n' + python_layer("p", "PhaseAndParam", None, "phase", "some text"))
    for phase in (caffe.TRAIN, caffe.TEST):
        net = caffe.Net(path, phase)
        assert net.forward()["phase"] == phase
        assert net.layers[0].seen == (phase, "some text")


def test_added_blobs_are_learnable_params(write_net, tmp_path) -> None:
    path = write_net('name: "offset" force_backward: true\ninput: "x" input_shape { dim: 2 dim: 2 }\n'
                     + python_layer("off", "LearnedOffset", "x", "y"))
    net = caffe.Net(path, caffe.TRAIN)
    assert list(net.params) == ["off"]
    assert net.params["off"][0].shape == [1]
    assert len(net._net.learnable_params) == 1
    net.blobs["x"].data[...] = 1.0
    net.forward()
    assert (net.blobs["y"].data == 1.5).all()
    net.blobs["y"].diff[...] = 1.0
    net.backward()
    net.backward()
    assert net.params["off"][0].diff[0] == 8.0  # the user's backward accumulates: 2 × 4 elements
    net._net.update()  # data -= diff, as a solver's last step
    assert net.params["off"][0].data[0] == -7.5
    weights = str(tmp_path / "offset.caffemodel")
    net.save(weights)
    other = caffe.Net(path, caffe.TRAIN, weights=weights)
    assert other.params["off"][0].data[0] == -7.5
    shared = caffe.Net(path, caffe.TEST)
    shared.share_with(net)
    net.params["off"][0].data[0] = 4.0
    assert shared.params["off"][0].data[0] == 4.0


def test_errors_in_setup_are_runtime_errors_naming_the_layer(write_net) -> None:
    path = write_net('input: "x" input_shape { dim: 1 }\n' + python_layer("broken", "FailsInSetup", "x", "y"))
    with pytest.raises(RuntimeError, match=r"layer 'broken' \(Python\): setup raised ValueError") as info:
        caffe.Net(path, caffe.TEST)
    assert isinstance(info.value, PythonLayerError)
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize(("module", "cls", "message"), [
    ("no_such_module_here", "X", "cannot import python_param.module 'no_such_module_here'"),
    (MODULE, "Missing", f"module '{MODULE}' has no python_param.layer 'Missing'"),
    (MODULE, "NotALayer", "NotALayer must subclass caffe.Layer"),
])
def test_loading_errors(write_net, module, cls, message) -> None:
    path = write_net(f'layer {{ name: "p" type: "Python" top: "y" '
                     f'python_param {{ module: "{module}" layer: "{cls}" }} }}')
    with pytest.raises(RuntimeError, match=message):
        caffe.Net(path, caffe.TEST)


def test_an_oserror_in_setup_keeps_its_file_name(write_net, tmp_path) -> None:
    missing = tmp_path / "labels.txt"
    path = write_net(f'layer {{ name: "p" type: "Python" top: "y" python_param {{ module: "{MODULE}" '
                     f'layer: "OpensAMissingFile" param_str: "{missing}" }} }}')
    with pytest.raises(RuntimeError) as info:
        caffe.Net(path, caffe.TEST)
    assert f"setup raised FileNotFoundError: [Errno 2] No such file or directory: '{missing}'" in \
        str(info.value)


def test_a_module_not_found_points_at_pythonpath_and_the_prototxt_folder(write_net, tmp_path) -> None:
    (tmp_path / "beside_the_net.py").write_text("")
    path = write_net('layer { name: "p" type: "Python" top: "y" '
                     'python_param { module: "beside_the_net" layer: "X" } }')
    with pytest.raises(RuntimeError) as info:
        caffe.Net(path, caffe.TEST)
    message = str(info.value)
    assert "No module named 'beside_the_net'" in message
    assert f"add the folder that holds beside_the_net.py to PYTHONPATH, e.g. the prototxt's folder (it is " \
           f"there): PYTHONPATH={tmp_path}" in message


def test_an_import_error_inside_the_module_keeps_its_message(write_net, tmp_path, monkeypatch) -> None:
    (tmp_path / "needs_a_package.py").write_text("import no_such_package_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write_net('layer { name: "p" type: "Python" top: "y" '
                     'python_param { module: "needs_a_package" layer: "X" } }')
    with pytest.raises(RuntimeError) as info:
        caffe.Net(path, caffe.TEST)
    assert "importing python_param.module 'needs_a_package' failed: ModuleNotFoundError: No module named " \
           "'no_such_package_anywhere'" in str(info.value)
    assert "PYTHONPATH" not in str(info.value)


def test_errors_in_forward_keep_their_type_and_name_the_layer(write_net) -> None:
    net = caffe.Net(write_net(python_layer("f", "FailsInForward", None, "y")), caffe.TEST)
    with pytest.raises(KeyError, match="broken") as info:
        net.forward()
    assert "in forward of Python layer 'f' (Python)" in info.value.__notes__


def test_standalone_layer_defaults() -> None:
    layer = caffe.Layer()
    assert layer.type == "Python" and len(layer.blobs) == 0 and layer.phase == 0
    layer.setup([], [])
    layer.reshape([], [])
    layer.backward([], [False], [])
    with pytest.raises(NotImplementedError, match="forward"):
        layer.forward([], [])
    with pytest.raises(NotImplementedError, match="backward"):
        layer.backward([], [True], [])
    layer.blobs.add_blob(2, 3)
    assert layer.blobs[0].shape == [2, 3] and (layer.blobs[0].data == 0).all()


class OwnInit(caffe.Layer):
    """A layer whose __init__ does not call caffe.Layer's."""

    def __init__(self, param):
        self.created = True

    def reshape(self, bottom, top):
        top[0].reshape(2)

    def forward(self, bottom, top):
        top[0].data[...] = len(self.param_str)


def test_subclass_without_base_init(write_net) -> None:
    net = caffe.Net(write_net(python_layer("own", "OwnInit", None, "y", "abc")), caffe.TEST)
    assert list(net.forward()["y"]) == [3, 3]
    assert net.layers[0].type == "Python" and net.layers[0].created
