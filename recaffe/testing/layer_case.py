"""LayerCase: the shared pytest harness every layer test derives from.

A test class names the layer type, a list of parameter snippets (prototxt text for the layer's
fields), bottom shapes and a differentiable ``reference`` in plain torch; the base class
generates, for every snippet, the tests that apply to the layer (so a skip always means
something missing from the environment, never a test that does not apply):

* ``test_setup_shapes``: top shapes equal the reference's;
* ``test_forward``: float32 tops equal the float64 reference (rtol 1e-4 of each top's scale);
* ``test_backward_vs_autograd``: bottom and param diffs equal autograd through ``reference``;
* ``test_gradient_numeric``: Caffe's GradientChecker (central differences, float64),
  on the snippets in ``numeric_cases`` when a class names them (default: every snippet);
* ``test_propagate_down_honoured``: all flags off leaves every diff untouched;
  (these three only when ``has_backward``)
* ``test_prototxt_roundtrip``: the parameter survives text format and rebuilds identical tops;
* ``test_param_diffs_accumulate``: two backwards give twice the param diffs, or the same diffs
  for params whose entry in ``accumulates_param_diffs`` is False (Caffe assigns those); only for
  the snippets whose layer has learnable params;
* ``test_in_place``: in-place set-up is refused when the layer class does not support it;
  when it does and ``in_place`` is set (in-place use is exact, Caffe's "Y"), in-place forward
  and backward equal out-of-place. A layer Caffe runs in place inexactly ("unsafe") gets none.

Example::

    class TestReLU(LayerCase):
        layer_type = "ReLU"
        params = ["", "relu_param { negative_slope: 0.1 }"]
        bottom_shapes = [(2, 3, 4, 5)]
        kink, kink_range = 0.0, 0.01
        in_place = True

        def reference(self, bottoms, blobs, param):
            (x,) = bottoms
            slope = param.relu_param.negative_slope
            return (torch.where(x > 0, x, slope * x),)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pytest
import torch

from recaffe import forks, rng
from recaffe.blob import Blob
from recaffe.io import prototxt
from recaffe.layer import Layer, LayerError
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.testing.gradient_check import SEED, GradientChecker

Tensors = Sequence[torch.Tensor]
_BACKWARD_TESTS = ("test_backward_vs_autograd", "test_gradient_numeric", "test_propagate_down_honoured")


class LayerCase:
    """Base class of layer tests; see the module docstring."""

    layer_type: ClassVar[str] = ""
    dialect: ClassVar[str | None] = None  # a fork's layer: params are read in that dialect (recaffe.forks)
    params: ClassVar[Sequence[str]] = ("",)
    bottom_shapes: ClassVar[Sequence[tuple[int, ...]]] = ((2, 3, 4, 5),)
    num_tops: ClassVar[int] = 1
    phase: ClassVar[caffe_pb2.Phase.ValueType] = caffe_pb2.TRAIN
    check_bottoms: ClassVar[Sequence[int] | None] = None  # None: every bottom
    check_tops: ClassVar[Sequence[int] | None] = None  # None: every top
    has_backward: ClassVar[bool] = True
    in_place: ClassVar[bool] = False  # in-place use is exact (Caffe's "Y")
    accumulates_param_diffs: ClassVar[bool | Sequence[bool]] = True  # or one flag per layer blob
    stepsize: ClassVar[float] = 1e-3
    threshold: ClassVar[float] = 1e-3
    kink: ClassVar[float] = 0.0
    kink_range: ClassVar[float] = -1.0
    forward_rtol: ClassVar[float] = 1e-4
    numeric_cases: ClassVar[Sequence[str] | None] = None  # the snippets the numeric check runs on; None: all

    layer: Layer  # the layer under test, for references that need its state (e.g. a dropout mask)

    # ------------------------------------------------------------ to override
    def reference(self, bottoms: Tensors, blobs: Tensors, param: caffe_pb2.LayerParameter) -> Tensors:
        """The tops, computed with differentiable torch ops from float64 bottoms and blobs."""
        raise NotImplementedError

    def make_bottoms(self, param: caffe_pb2.LayerParameter, generator: torch.Generator) -> list[torch.Tensor]:
        """Bottom data (float64); the default is standard normal of ``bottom_shapes``."""
        return [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in self.bottom_shapes]

    def top_count(self, param: caffe_pb2.LayerParameter) -> int:
        return self.num_tops

    # ---------------------------------------------------------------- plumbing
    _learnable_cases: ClassVar[Sequence[str]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Leave out the generated tests that cannot apply to this layer (pytest collects only
        callables)."""
        super().__init_subclass__(**kwargs)
        if not cls.layer_type:
            return
        inapplicable = [] if cls.has_backward else [*_BACKWARD_TESTS, "test_param_diffs_accumulate"]
        if not cls.bottom_shapes or not cls.num_tops:
            inapplicable.append("test_in_place")  # no top can be a bottom
        elif cls.layer_type in LAYERS and LAYERS.get(cls.layer_type).supports_in_place and not cls.in_place:
            inapplicable.append("test_in_place")  # in-place use is inexact, as in Caffe: nothing to compare
        if cls.has_backward:
            cls._learnable_cases = [case for case in cls.params if cls()._has_learnable_params(case)]
            if not cls._learnable_cases:
                inapplicable.append("test_param_diffs_accumulate")
        for name in inapplicable:
            if getattr(cls, name) is getattr(LayerCase, name):  # a subclass's own version stays
                setattr(cls, name, None)

    def _has_learnable_params(self, snippet: str) -> bool:
        try:
            layer, _, _ = self.build(snippet, torch.float64)
        except Exception:
            return True  # let the test run and report the failure
        return any(layer.param_propagate_down)

    def pytest_generate_tests(self, metafunc: Any) -> None:
        if "case" in metafunc.fixturenames:
            cases = self.params
            if metafunc.function.__name__ == "test_param_diffs_accumulate":
                cases = self._learnable_cases
            elif metafunc.function.__name__ == "test_gradient_numeric" and self.numeric_cases is not None:
                cases = self.numeric_cases
            ids = [snippet.strip().replace("\n", " ")[:60] or "default" for snippet in cases]
            metafunc.parametrize("case", list(cases), ids=ids)

    def layer_param(self, snippet: str) -> caffe_pb2.LayerParameter:
        text, source = f'name: "L" type: "{self.layer_type}" {snippet}', f"{type(self).__name__} params"
        if self.dialect is None:
            param = prototxt.parse_text(text, caffe_pb2.LayerParameter(), source)
        else:
            fork = forks.get_dialect(self.dialect)
            param = fork.lower_layer(prototxt.parse_text(text, fork.layer_parameter(), source))
        if not param.HasField("phase"):
            param.phase = self.phase
        return param

    def build(
        self, snippet: str, dtype: torch.dtype, *, in_place: bool = False
    ) -> tuple[Layer, list[Blob], list[Blob]]:
        param = self.layer_param(snippet)
        bottom = []
        for data in self.make_bottoms(param, torch.Generator().manual_seed(SEED)):
            blob = Blob(data.shape, dtype=dtype)
            blob.data.copy_(data)
            bottom.append(blob)
        # in place: top i is bottom i where both exist
        top = [bottom[i] if in_place and i < len(bottom) else Blob(dtype=dtype)
               for i in range(self.top_count(param))]
        rng.set_random_seed(SEED)
        layer = LAYERS.get(self.layer_type, self.dialect)(param, dtype=dtype)
        layer.setup(bottom, top)
        self.layer = layer
        return layer, bottom, top

    def forward(self, layer: Layer, bottom: list[Blob], top: list[Blob]) -> None:
        rng.set_random_seed(SEED)
        layer.run_forward(bottom, top)

    def checked_bottoms(self, layer: Layer, bottom: Sequence[Blob]) -> list[int]:
        if self.check_bottoms is not None:
            return list(self.check_bottoms)
        return list(range(len(bottom)))

    def checked_tops(self, top: Sequence[Blob]) -> list[int]:
        return list(range(len(top))) if self.check_tops is None else list(self.check_tops)

    def run_reference(
        self, layer: Layer, bottom: Sequence[Blob], grad: bool = False
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], Tensors]:
        bottoms = [b.data.detach().double().clone().requires_grad_(grad) for b in bottom]
        blobs = [b.data.detach().double().clone().requires_grad_(grad) for b in layer.blobs]
        return bottoms, blobs, self.reference(bottoms, blobs, layer.param)

    # ------------------------------------------------------------------- tests
    def test_setup_shapes(self, case: str) -> None:
        layer, bottom, top = self.build(case, torch.float64)
        self.forward(layer, bottom, top)
        _, _, expected = self.run_reference(layer, bottom)
        assert [t.shape for t in top] == [tuple(e.shape) for e in expected]

    def test_forward(self, case: str) -> None:
        layer, bottom, top = self.build(case, torch.float32)
        self.forward(layer, bottom, top)
        _, _, expected = self.run_reference(layer, bottom)
        for i, (blob, want) in enumerate(zip(top, expected)):
            scale = max(1.0, float(want.detach().abs().max())) if want.numel() else 1.0
            torch.testing.assert_close(
                blob.data.double(), want.detach(), rtol=0, atol=self.forward_rtol * scale,
                msg=_prefixed(f"top {i}"),
            )

    def test_backward_vs_autograd(self, case: str) -> None:
        layer, bottom, top = self.build(case, torch.float64)
        self.forward(layer, bottom, top)
        checked = self.checked_bottoms(layer, bottom)
        generator = torch.Generator().manual_seed(SEED + 1)
        for i, blob in enumerate(top):
            blob.diff.copy_(torch.randn(blob.shape, generator=generator, dtype=torch.float64)
                            if i in self.checked_tops(top) else torch.zeros(blob.shape, dtype=torch.float64))
        top_diffs = [blob.diff.clone() for blob in top]
        for blob in layer.blobs:
            blob.diff.zero_()
        layer.run_backward(top, [i in checked for i in range(len(bottom))], bottom)
        bottoms, blobs, outputs = self.run_reference(layer, bottom, grad=True)
        wrt = [bottoms[i] for i in checked] + [
            b for j, b in enumerate(blobs) if layer.param_propagate_down[j]]
        got = [bottom[i].diff for i in checked] + [
            b.diff for j, b in enumerate(layer.blobs) if layer.param_propagate_down[j]]
        used = self.checked_tops(top)
        grads = torch.autograd.grad(
            [outputs[i] for i in used], wrt, [top_diffs[i] for i in used], allow_unused=True)
        for k, (mine, want) in enumerate(zip(got, grads)):
            want = torch.zeros_like(mine) if want is None else want
            torch.testing.assert_close(mine, want, rtol=1e-6, atol=1e-8,
                                       msg=_prefixed(f"gradient {k} (bottoms first, then params)"))

    def test_gradient_numeric(self, case: str) -> None:
        layer, bottom, top = self.build(case, torch.float64)
        checker = GradientChecker(self.stepsize, self.threshold, self.kink, self.kink_range)
        checker.check(layer, bottom, top, self.checked_bottoms(layer, bottom), self.checked_tops(top))

    def test_prototxt_roundtrip(self, case: str) -> None:
        param = self.layer_param(case)
        if self.dialect is None:
            again = prototxt.parse_text(prototxt.to_text(param), caffe_pb2.LayerParameter())
        else:
            fork = forks.get_dialect(self.dialect)
            text = prototxt.to_text(fork.raise_layer(param))
            again = fork.lower_layer(prototxt.parse_text(text, fork.layer_parameter()))
        assert again == param
        layer, bottom, top = self.build(case, torch.float32)
        self.forward(layer, bottom, top)
        rebuilt = LAYERS.get(self.layer_type, self.dialect)(layer.to_proto(), dtype=torch.float32)
        other = [Blob(dtype=torch.float32) for _ in top]
        rng.set_random_seed(SEED)
        rebuilt.setup(bottom, other)
        self.forward(rebuilt, bottom, other)
        for mine, theirs in zip(top, other):
            assert torch.equal(mine.data, theirs.data)

    def test_param_diffs_accumulate(self, case: str) -> None:
        layer, bottom, top = self.build(case, torch.float64)
        learnable = [j for j, flag in enumerate(layer.param_propagate_down) if flag]
        accumulates = self.accumulates_param_diffs
        flags = [accumulates] * len(layer.blobs) if isinstance(accumulates, bool) else list(accumulates)
        self.forward(layer, bottom, top)
        for blob in top:
            blob.diff.fill_(0.5)
        for blob in layer.blobs:
            blob.diff.zero_()
        no_bottoms = [False] * len(bottom)
        layer.run_backward(top, no_bottoms, bottom)
        once = [layer.blobs[j].diff.clone() for j in learnable]
        layer.run_backward(top, no_bottoms, bottom)
        for j, first in zip(learnable, once):
            how = "accumulated" if flags[j] else "assigned"
            torch.testing.assert_close(layer.blobs[j].diff, 2 * first if flags[j] else first,
                                       msg=_prefixed(f"param {j} ({how})"))

    def test_propagate_down_honoured(self, case: str) -> None:
        layer, bottom, top = self.build(case, torch.float64)
        self.forward(layer, bottom, top)
        for blob in top:
            blob.diff.fill_(0.5)
        for blob in [*bottom, *layer.blobs]:
            blob.diff.fill_(7.0)
        layer.param_propagate_down = [False] * len(layer.blobs)
        layer.run_backward(top, [False] * len(bottom), bottom)
        for blob in [*bottom, *layer.blobs]:
            assert bool((blob.diff == 7.0).all()), "a diff changed although no gradient was asked for"

    def test_in_place(self, case: str) -> None:
        layer_class = LAYERS.get(self.layer_type, self.dialect)
        if not layer_class.supports_in_place:
            with pytest.raises(LayerError, match="in-place"):
                self.build(case, torch.float64, in_place=True)
            return
        layer, bottom, top = self.build(case, torch.float64)
        self.forward(layer, bottom, top)
        for blob in top:
            blob.diff.copy_(torch.linspace(-1, 1, blob.count(), dtype=torch.float64).view(blob.shape))
        if self.has_backward:
            layer.run_backward(top, [True] * len(bottom), bottom)
        layer2, bottom2, top2 = self.build(case, torch.float64, in_place=True)
        self.forward(layer2, bottom2, top2)
        for mine, theirs in zip(top2, top):
            torch.testing.assert_close(mine.data, theirs.data)
        if not self.has_backward:
            return
        for blob in top2:
            blob.diff.copy_(torch.linspace(-1, 1, blob.count(), dtype=torch.float64).view(blob.shape))
        layer2.run_backward(top2, [True] * len(bottom2), bottom2)
        for mine, theirs in zip(bottom2, bottom):
            torch.testing.assert_close(mine.diff, theirs.diff)


def _prefixed(where: str) -> Callable[[str], str]:
    """An ``assert_close`` message that keeps torch's report and says which tensor failed."""
    return lambda message: f"{where}: {message}"
