"""Deploy mode (``Net(..., optimize=True)``): the same outputs, in less time and memory.

A TEST-phase net runs as a plan of steps instead of layer by layer:

* a Convolution or InnerProduct followed by BatchNorm (global statistics), Scale and Bias layers
  that act per channel runs as one layer: their affine maps are folded into its weights and bias
  (computed in double precision), and a ReLU after them runs on its output in the same step;
* an Eltwise sum (coefficients 1) adds its bottoms in the memory layout they are held in
  (channels-last after a convolution: no conversion to row-major and back), with a ReLU after it
  in the same step;
* a Dropout applied in place is the identity at TEST time and is skipped (unless the layer says
  otherwise with ``identity_at_test = False``: a fork's MC dropout or test-time scaling);
* a 3×3 convolution of stride 1 on a large enough image runs as Winograd's F(4×4, 3×3) or
  F(2×2, 3×3) (``recaffe.math.winograd``: 1/4 or 4/9 of the multiply-adds, rounding like the direct
  kernel's); its transformed weights are computed when the net first runs, like the folding;
* LRN across channels, MAX and AVE pooling, Winograd's transforms, a one-image inner product and
  a classifier's Softmax run on small C kernels built for this machine (``recaffe.math.compiled``),
  where a C compiler is found; PyTorch's kernels otherwise;
* with fewer images than threads, other convolutions run on weights packed once into oneDNN's
  layout, with the ReLU inside oneDNN's kernel (``recaffe.math.onednn``), within a memory budget
  (``PACKED_BYTES``);
* each step's work is cut into pieces that the threads take as they are free
  (``recaffe.workers``, ``recaffe.math.pieces``; see ``recaffe.threads``), by images when there
  are enough of them; with fewer images than threads, a step's kernels run on PyTorch's own threads
  (``workers.native``: oneDNN splits one image's convolution in native code), and small steps
  that the DAG lets run at the same time do so, one per thread (every step of a stage with more
  steps than threads, such as an inception module's branches), those of consecutive stages in
  one job (``_forward_by_stages``, ``_together``);
* a layer is reshaped only when its blobs have changed shape since its last Reshape (``_forward``);
* once the last step that reads a blob has run, the blob's memory is released (liveness over the
  DAG; blobs sharing storage, as Split and Flatten tops do, count as one), so the allocator hands it
  to later layers and peak memory follows the widest point of the net rather than its sum.

What stays readable after ``forward``: the net's inputs and outputs and the blobs asked for
(``forward(keep=...)``; pycaffe's ``forward(blobs=[...])`` and ``forward_all(blobs=...)`` pass
theirs). Other blobs, and blobs inside a fused step, are not kept. Fusion never crosses a blob that
is kept or read by another layer, so a kept blob holds what the plain net gives it.

The folded weights live in the convolution's own blobs (no second copy): they are folded when the
net first runs, and unfolded before new weights are copied in (``copy_trained_layers_from``), to be
folded again at the next forward. Weights edited by hand after the first forward are not seen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Protocol

import torch

from recaffe import memory_plan, threads
from recaffe.blob import Blob
from recaffe.layer import Layer, LayerError
from recaffe.layers.common.inner_product import InnerProductLayer
from recaffe.layers.utility.softmax import SoftmaxLayer
from recaffe.layers.vision.base_conv import BaseConvolutionLayer
from recaffe.layers.vision.lrn import LRNLayer
from recaffe.layers.vision.pooling import PoolingLayer
from recaffe.math import compiled, layout, onednn, pieces, winograd
from recaffe.proto import caffe_pb2
from recaffe.workers import SERIAL, Workers, native


class Net(Protocol):
    """What deploy mode reads of a ``recaffe.Net`` (named here, so this module does not import net)."""

    name: str
    device: torch.device
    phase: caffe_pb2.Phase.ValueType
    layers: list[Layer]
    layer_names: list[str]
    blob_list: list[Blob]
    blob_names: list[str]
    bottom_vecs: list[list[Blob]]
    top_vecs: list[list[Blob]]
    bottom_id_vecs: list[list[int]]
    top_id_vecs: list[list[int]]
    input_blob_indices: list[int]
    output_blob_indices: list[int]
    before_forward: list[Callable[[int], None]]
    after_forward: list[Callable[[int], None]]

P = caffe_pb2.PoolingParameter
Kernel = Callable[[Sequence[Blob], Sequence[Blob]], None]  # a layer's forward, as deploy mode runs it
_FOLDABLE = ("Convolution", "InnerProduct")
# Layers whose forward draws no random numbers and keeps no state between passes: their steps may
# run in any order the DAG allows (``_stages``).
_STAGED_TYPES = frozenset({
    "Input", "Convolution", "Deconvolution", "InnerProduct", "Pooling", "LRN", "ReLU", "PReLU", "ELU",
    "Sigmoid", "TanH", "AbsVal", "BNLL", "Power", "Exp", "Log", "Concat", "Slice", "Split", "Eltwise",
    "Flatten", "Reshape", "Softmax", "BatchNorm", "Scale", "Bias", "Crop"})
_AFFINE = ("BatchNorm", "Scale", "Bias")
# The most memory a net's packed convolution weights (``recaffe.math.onednn``) take: a second copy
# of those weights, so that deploy mode stays leaner than OpenCV's dnn, which keeps one too. (All
# of CaffeNet's and GoogLeNet's packable layers, 5.8 and 17.6 MB; ResNet-50's at 7×7 and 14×14.)
PACKED_BYTES = 64 << 20
# The most values a stage's lone small step may write and still go on in the job of the steps
# before it (``_together``): GoogLeNet's Concat of 480 channels at 28×28 (376K) does.
JOINED_VALUES = 1 << 19


@dataclass
class _Fused:
    """A Convolution/InnerProduct with the per-channel layers after it folded in."""

    layer_id: int
    absorbed: list[int]  # BatchNorm / Scale / Bias layer ids, in order
    relu: int | None  # the ReLU layer folded in, if any
    top: int  # the blob the step writes (the last absorbed layer's top)
    bias: torch.Tensor | None = None  # the folded bias, when the layer has no bias blob
    factor: torch.Tensor | None = None  # per output channel, double: W = W_original · factor
    shift: torch.Tensor | None = None  # double: b = b_original · factor + shift
    saved_rows: dict[int, torch.Tensor] = field(default_factory=dict)  # rows a zero factor wiped
    winograd: dict[int, torch.Tensor] = field(default_factory=dict)  # m -> the folded weights' U
    packed: dict[torch.Size, torch.Tensor] = field(default_factory=dict)  # input shape -> oneDNN's weights
    # (input shape, threads) -> the convolution's kernel (``DeployRunner._conv_kind``)
    kernels: dict[tuple[tuple[int, ...], int], str | int] = field(default_factory=dict)
    # (a step is made anew once its weights are unfolded, so these never outlive the weights)

    @property
    def layer_ids(self) -> list[int]:
        return [self.layer_id, *self.absorbed, *([self.relu] if self.relu is not None else [])]


@dataclass
class _Stage:
    """Steps that depend on none of each other (indices into the plan's steps), run at once, and
    the blob ids whose memory is released once they have all run."""

    steps: list[int]
    released: list[int]
    needs: dict[int, set[int]] = field(default_factory=dict)  # step -> the steps it must follow
    users: set[int] = field(default_factory=set)  # the steps that read or write a released blob


@dataclass
class _Plan:
    steps: list[int | _Fused]  # a layer id (run as it is) or a fused step
    release_after: list[list[int]]  # per step: blob ids whose memory is released after it
    skipped: set[int]  # layers that do not run (in-place Dropout)
    stages: list[_Stage]  # the steps by stages of the DAG; empty where a step must keep its turn
    # (thread count, input shapes) -> the steps that run at once (``DeployRunner._together``)
    together: dict[tuple[int, object], set[int]] = field(default_factory=dict)


class DeployRunner:
    """Runs a net's forward passes as a deploy plan (see the module docstring)."""

    def __init__(self, net: Net) -> None:
        if net.phase != caffe_pb2.TEST:
            raise ValueError(f"net {net.name!r}: optimize=True is for TEST-phase (deploy) nets")
        self.net = net
        self._plans: dict[tuple[frozenset[int], tuple[int, ...]], _Plan] = {}
        self._folded: dict[int, _Fused] = {}  # layer id -> the fused step whose weights are folded
        self._sized_for: tuple[tuple[int, ...], ...] | None = None  # input shapes memory was sized for
        self._threads = 1  # the current pass's
        self._shapes: dict[int, list[tuple[int, tuple[int, ...]]]] = {}  # layer id -> blobs after Reshape
        self._pack_choice: tuple[object, frozenset[int]] | None = None  # (input shapes, layer ids)

    # ------------------------------------------------------------------ running
    def forward(self, start: int, end: int, keep: Iterable[str | int] = ()) -> float:
        net = self.net
        kept = frozenset(net.blob_names.index(name) if isinstance(name, str) else name for name in keep)
        inputs = tuple(net.blob_list[i].shape for i in net.input_blob_indices)
        if inputs != self._sized_for:  # new shapes: memory allocated from now on fits them
            memory_plan.fit_unallocated(net.blob_list)
            self._sized_for = inputs
        plan = self._plan(kept)
        loss: torch.Tensor | float = 0.0
        with threads.inference() as shared, torch.no_grad():
            workers = shared if net.device.type == "cpu" else SERIAL  # CUDA kernels queue anyway
            self._threads = workers.count
            whole = start == 0 and end == len(net.layers) - 1
            watched = net.before_forward or net.after_forward  # callbacks see the layers in order
            if whole and workers.count > 1 and plan.stages and not watched:
                return self._forward_by_stages(plan, workers)
            together = self._together(plan, workers)
            for index, (step, released) in enumerate(zip(plan.steps, plan.release_after)):
                ids = _layer_ids(step)
                inside = [start <= i <= end for i in ids]
                if not any(inside):
                    continue
                if not all(inside):
                    raise LayerError(f"net {net.name!r} (deploy mode): cannot run layers {start}..{end}: "
                                     f"layers {[net.layer_names[i] for i in ids]} run as one fused step")
                for i in ids:
                    for callback in net.before_forward:
                        callback(i)
                loss = loss + (self._run_step(step, SERIAL) if index in together
                               else self._run_alone(step, workers))
                for i in ids:
                    for callback in net.after_forward:
                        callback(i)
                if whole:
                    for blob_id in released:
                        net.blob_list[blob_id].release_data()
        return float(loss)

    def _forward_by_stages(self, plan: _Plan, workers: Workers) -> float:
        """A whole pass, stage by stage: the steps of a stage that run ``_together`` run at the
        same time, one per thread (each on one thread); the others run one after another, each on
        all threads (``_run_alone``). The loss is summed in the steps' order, as in a pass step by
        step.

        Steps that run together in consecutive stages are handed to the threads as one job, each
        step taken once the steps it follows have run, and the other steps of those stages wait
        until the job is done, unless a step of the job must follow them: a thread that finishes
        its step goes on to the next stage's instead of waiting for the others of its stage, and
        a worker is woken once for several stages (on a virtual machine a woken core runs slow for
        a while). A stage's blobs are released inside the job, once the steps that use them have
        run (unless one of those waits for the job's end), so that a job through a whole net holds
        no more memory than a pass step by step."""
        losses: list[torch.Tensor | float] = [0.0] * len(plan.steps)
        together = self._together(plan, workers)
        job: list[int | list[int]] = []  # steps, and blob ids released once the steps using them have run
        follows: list[set[int]] = []  # per entry of the job: the steps it must follow
        deferred: list[int] = []
        released: list[int] = []

        def run(index: int) -> None:
            losses[index] = self._run_step(plan.steps[index], SERIAL)

        def flush() -> None:
            if job:
                position: dict[int, int] = {}
                pieces: list[Callable[[], object]] = []
                for entry in job:
                    if isinstance(entry, int):
                        position[entry] = len(pieces)
                        pieces.append(functools.partial(run, entry))
                    else:
                        pieces.append(functools.partial(self._release, entry))
                workers.run(pieces, [{position[j] for j in after if j in position} for after in follows])
            for k in deferred:
                losses[k] = self._run_alone(plan.steps[k], workers)
            self._release(released)
            for pending in (job, follows, deferred, released):
                pending.clear()

        needs: dict[int, set[int]] = {}
        for stage in plan.stages:
            needs.update(stage.needs)
            at_once = [k for k in stage.steps if k in together]
            if deferred and any(j in deferred for k in at_once for j in needs[k]):
                flush()
            job.extend(at_once)
            follows.extend(needs[k] for k in at_once)
            deferred.extend(k for k in stage.steps if k not in together)
            if stage.released and job and not stage.users.intersection(deferred):
                job.append(stage.released)  # in the job: a long job would hold every blob till its end
                follows.append(stage.users)
            else:
                released.extend(stage.released)
            if not job:  # nothing to go on with: the memory is released now
                flush()
        flush()
        return float(sum(losses, start=0.0))

    def _together(self, plan: _Plan, workers: Workers) -> set[int]:
        """The steps that run at the same time as others, each on one thread (``_forward_by_stages``
        hands them to the threads in jobs):

        * in a stage with more steps than threads (an inception module's branches), every step
          without an image per thread: the stage's width keeps the threads busy, and its big steps
          run there rather than on all threads, which would hand the threads over to PyTorch's and
          back around each of them;
        * in a narrower stage, the steps that do not share their own work well (``_shares_well``),
          when there are more than one;
        * a stage's lone step after steps that run at once, if it is small (it does not share its
          work well and writes at most ``JOINED_VALUES`` values: a Concat or Pooling between two
          modules): the job goes on through it instead of ending there.

        A pass step by step runs them on one thread too, one after another, so that every pass
        gives the same bits. Worked out once per thread count and input shapes (every pass asks)."""
        key = (workers.count, self._sized_for)
        if key not in plan.together:
            plan.together[key] = self._find_together(plan, workers)
        return plan.together[key]

    def _find_together(self, plan: _Plan, workers: Workers) -> set[int]:
        together: set[int] = set()
        if workers.count == 1:
            return together
        previous: list[int] = []
        for stage in plan.stages:
            steps = [k for k in stage.steps if not self._image_per_thread(plan.steps[k], workers)]
            small = [k for k in steps if not self._shares_well(plan.steps[k], workers)]
            if len(stage.steps) > workers.count:
                chosen = steps
            elif len(small) > 1 or (len(stage.steps) == 1 and previous and small
                                    and self._writes(plan.steps[small[0]]) <= JOINED_VALUES):
                chosen = small
            else:
                chosen = []
            together.update(chosen)
            previous = chosen
        return together

    def _first_top(self, step: int | _Fused) -> Blob | None:
        tops = self.net.top_vecs[_layer_ids(step)[0]]
        return tops[0] if tops else None

    def _writes(self, step: int | _Fused) -> int:
        """How many values the step's first top holds."""
        top = self._first_top(step)
        return top.count() if top is not None else 0

    def _run_alone(self, step: int | _Fused, workers: Workers) -> torch.Tensor | float:
        """Run a step on all the threads. With an image per thread, its kernels cut the work into
        pieces that the threads share (``recaffe.math.pieces``), as do an inner product (a
        matrix-vector product for one image, which PyTorch runs on one thread), a step on compiled
        kernels and a Winograd convolution with enough tiles (``_compiled_winograd``): their
        pieces run free of the GIL. Otherwise its kernels run on PyTorch's own threads
        (``workers.native``), which split one image's work in native code: at that size the
        hand-over of pieces between Python threads costs more."""
        if (workers.count == 1 or self._image_per_thread(step, workers)
                or isinstance(self.net.layers[_layer_ids(step)[0]], InnerProductLayer)
                or self._compiled_kernel(step, workers) is not None or self._compiled_winograd(step)):
            return self._run_step(step, workers)
        return native(workers.count, functools.partial(self._run_step, step, SERIAL))

    def _run_step(self, step: int | _Fused, workers: Workers) -> torch.Tensor | float:
        """Run one step of the plan; its weighted loss."""
        if isinstance(step, _Fused):
            self._run_fused(step, workers)
            return 0.0
        net = self.net
        layer = net.layers[step]
        kernel = self._compiled_kernel(step, workers)
        if kernel is None and layer.shares_work:
            kernel = _sharing(layer, workers)
        return self._forward(step, layer, net.bottom_vecs[step], net.top_vecs[step], kernel)

    def _compiled_kernel(self, step: int | _Fused, workers: Workers) -> Kernel | None:
        """The forward of a step on ``recaffe.math.compiled``'s kernels where they take its bottom:
        an LRN across channels or a MAX or AVE pooling with one top (cut into pieces for
        ``workers``, free of the GIL even at one image), or a Softmax of at most
        ``compiled.SOFTMAX_VALUES`` values, keeping nothing for backward; None for other steps, or
        where the kernels are not built."""
        if isinstance(step, _Fused) or compiled.load() is None:
            return None
        layer = self.net.layers[step]
        if layer.need_backward or not isinstance(layer, LRNLayer | PoolingLayer | SoftmaxLayer):
            return None
        bottom = self.net.bottom_vecs[step][0]
        if isinstance(layer, SoftmaxLayer):
            small = bottom.count() <= compiled.SOFTMAX_VALUES
            return functools.partial(_compiled_softmax, layer) if small else None
        x = bottom.strided_data()
        if isinstance(layer, LRNLayer):
            return (functools.partial(_compiled_lrn, layer, workers)
                    if layer.across and compiled.takes_lrn(x, layer.param.lrn_param.local_size) else None)
        if (len(self.net.top_vecs[step]) == 1 and layer.param.pooling_param.pool in (P.MAX, P.AVE)
                and compiled.takes(x)):
            return functools.partial(_compiled_pool, layer, workers)
        return None

    def _compiled_winograd(self, step: int | _Fused) -> bool:
        """Whether the step is a Winograd convolution with ``recaffe.math.compiled``'s transforms
        whose tiles are enough for a piece per thread (``winograd.shares_well``): a piece is then two
        calls free of the GIL and a product, which the threads share well even at one image."""
        if not isinstance(step, _Fused) or compiled.load() is None:
            return False
        layer, bottom = self.net.layers[step.layer_id], self.net.bottom_vecs[step.layer_id][0]
        if not isinstance(layer, BaseConvolutionLayer):
            return False
        m = self._conv_kind(step, layer, bottom.shape)
        return isinstance(m, int) and winograd.shares_well(bottom.shape, m, self._threads)

    def _release(self, blob_ids: Sequence[int]) -> None:
        for blob_id in blob_ids:
            self.net.blob_list[blob_id].release_data()

    def _forward(self, layer_id: int, layer: Layer, bottom: Sequence[Blob], top: Sequence[Blob],
                 kernel: Kernel | None) -> torch.Tensor | float:
        """``layer.run_forward``, without its Reshape where the layer's blobs are those, and have the
        shapes, they had after its last one, and its type reshapes from the shapes alone
        (``_STAGED_TYPES``): in a net of many small steps, Reshape is a few percent of a pass."""
        shapes = [(id(blob), blob.shape) for blob in (*bottom, *top)]
        if self._shapes.get(layer_id) == shapes and layer.type in _STAGED_TYPES:
            return layer.run_forward(bottom, top, kernel, reshape=False)
        loss = layer.run_forward(bottom, top, kernel)
        self._shapes[layer_id] = [(id(blob), blob.shape) for blob in (*bottom, *top)]
        return loss

    def _image_per_thread(self, step: int | _Fused, workers: Workers) -> bool:
        """Whether the step's first top holds at least one image per thread (its kernels then cut
        the work by images)."""
        top = self._first_top(step)
        return top is not None and top.num_axes > 0 and top.shape[0] >= workers.count

    def _shares_well(self, step: int | _Fused, workers: Workers) -> bool:
        """A step with an image per thread (the kernels cut by images), or a convolution or inner
        product big enough to be cut into a piece per thread."""
        net = self.net
        if self._image_per_thread(step, workers):
            return True
        if not isinstance(step, _Fused):
            return False
        layer = net.layers[step.layer_id]
        if not isinstance(layer, BaseConvolutionLayer | InnerProductLayer):
            return False
        weights = layer.blobs[0].count()
        rows = self._writes(step) // layer.blobs[0].shape[0]  # output values per channel
        if isinstance(layer, InnerProductLayer):
            return pieces.linear_parts(workers, rows, weights) == workers.count
        return pieces.parts(workers, rows * weights, pieces.MIN_PIECE_MACS) == workers.count

    def _packs(self, step: _Fused, images: int) -> bool:
        """Whether the convolution of ``step`` runs on weights packed once (``recaffe.math.onednn``):
        with one image, or fewer images than threads, where reordering the weights at every pass
        weighs most, if it is one of those chosen for packing (``_chosen_for_packing``)."""
        if images >= max(2, self._threads):
            return False
        if self._pack_choice is None or self._pack_choice[0] != self._sized_for:
            self._pack_choice = (self._sized_for, self._chosen_for_packing())
        return step.layer_id in self._pack_choice[1]

    def _chosen_for_packing(self) -> frozenset[int]:
        """The convolutions whose weights are packed: those with the fewest output pixels per image
        first (the reorder is the larger part of their time), as long as the packed copies add up
        to at most ``PACKED_BYTES``; only those oneDNN takes (``onednn.available``) and that do not
        run as Winograd convolutions, so that a chosen layer always runs on its packed weights."""
        net = self.net
        ranked = sorted((net.top_vecs[i][0].count(2), i) for i, layer in enumerate(net.layers)
                        if isinstance(layer, BaseConvolutionLayer) and layer.type == "Convolution"
                        and net.top_vecs[i][0].num_axes == 4 and self._packable(i, layer))
        chosen: set[int] = set()
        total = 0
        for _, layer_id in ranked:
            weight = net.layers[layer_id].blobs[0]
            size = weight.count() * weight.dtype.itemsize
            if total + size <= PACKED_BYTES:
                chosen.add(layer_id)
                total += size
        return frozenset(chosen)

    def _packable(self, layer_id: int, layer: BaseConvolutionLayer) -> bool:
        """Whether oneDNN takes the convolution on its bottom's shape and it is not a Winograd one."""
        bottom = self.net.bottom_vecs[layer_id][0]
        return (onednn.available(bottom.shape, bottom.device, layer.geometry, transposed=False)
                and _tile_size(layer, bottom.shape) is None)

    def _run_fused(self, step: _Fused, workers: Workers) -> None:
        self._fold(step)
        net = self.net
        layer = net.layers[step.layer_id]
        bottoms, top = net.bottom_vecs[step.layer_id], net.blob_list[step.top]
        slope = None if step.relu is None else net.layers[step.relu].param.relu_param.negative_slope
        kernel = functools.partial(self._fused_kernel, step, workers, slope)
        self._forward(step.layer_id, layer, bottoms, [top], kernel)

    def _fused_kernel(self, step: _Fused, workers: Workers, slope: float | None, bottoms: list[Blob],
                      tops: list[Blob]) -> None:
        layer, top = self.net.layers[step.layer_id], tops[0]
        if layer.type == "Eltwise":  # a plain sum, in the layout its bottoms are held in
            xs = [blob.strided_data() for blob in bottoms]
            y = layout.output(top, xs[0])
            pieces.sum_(workers, y, xs, slope)
            layout.store(top, y)
        elif isinstance(layer, BaseConvolutionLayer):
            bias = layer.blobs[1].data if len(layer.blobs) > 1 else step.bias
            layout.store(top, self._convolve(step, layer, workers, bottoms[0].strided_data(), bias, slope))
        elif isinstance(layer, InnerProductLayer):  # its bias blob holds the folded bias
            layer.forward(bottoms, tops, workers=workers, slope=slope, matvec=compiled.matvec)

    def _convolve(self, step: _Fused, layer: BaseConvolutionLayer, workers: Workers, x: torch.Tensor,
                  bias: torch.Tensor | None, slope: float | None) -> torch.Tensor:
        """A fused step's convolution of ``x``, with the kernel of ``_conv_kind``."""
        weight, g, group = layer.blobs[0].strided_data(), layer.geometry, layer.param.convolution_param.group
        kind = self._conv_kind(step, layer, x.shape)
        if kind == "packed":
            if x.shape not in step.packed:  # (one input shape at a time)
                step.packed = {x.shape: onednn.pack(weight, g, group, x.shape)}
            return onednn.convolution(layout.to_channels_last(x), step.packed[x.shape], bias, g, group, slope)
        if isinstance(kind, str):  # "direct"
            return pieces.convolution(workers, x, weight, bias, g, group, slope)
        if kind not in step.winograd:
            step.winograd[kind] = winograd.kernels(weight, kind)
        return winograd.convolution(workers, x, step.winograd[kind], bias, g.pad, kind, slope)

    def _conv_kind(self, step: _Fused, layer: BaseConvolutionLayer, x_shape: tuple[int, ...]) -> str | int:
        """The kernel of the step's convolution of inputs of ``x_shape``, chosen once per shape and
        thread count: Winograd's F(m×m, 3×3) (its m) where ``winograd.tile_size`` gives one, on the
        CPU, else ``"packed"`` where the weights are packed (``_packs``), else ``"direct"``."""
        key = (x_shape, self._threads)
        kind = step.kernels.get(key)
        if kind is None:
            m = _tile_size(layer, x_shape) if layer.type == "Convolution" and len(x_shape) == 4 else None
            if m is None or self.net.device.type != "cpu":
                kind = "packed" if self._packs(step, x_shape[0]) else "direct"
            else:
                kind = m
            step.kernels[key] = kind
        return kind

    # ------------------------------------------------------------------ planning
    def _plan(self, kept: frozenset[int]) -> _Plan:
        net = self.net
        storage = tuple(blob.data_storage_key() for blob in net.blob_list)
        key = (kept, storage)
        if key not in self._plans:
            if len(self._plans) > 8:
                self._plans.clear()
            self._plans[key] = self._build(kept | set(net.input_blob_indices) | set(net.output_blob_indices))
        return self._plans[key]

    def _readers(self) -> dict[int, list[int]]:
        readers: dict[int, list[int]] = {}
        for layer_id, bottoms in enumerate(self.net.bottom_id_vecs):
            for blob_id in bottoms:
                readers.setdefault(blob_id, []).append(layer_id)
        return readers

    def _build(self, kept: AbstractSet[int]) -> _Plan:
        net = self.net
        readers = self._readers()
        steps: list[int | _Fused] = []
        absorbed: set[int] = set()
        skipped = {i for i, layer in enumerate(net.layers)
                   if layer.type == "Dropout" and net.top_vecs[i][0] is net.bottom_vecs[i][0]
                   and getattr(layer, "identity_at_test", True)}
        for layer_id, layer in enumerate(net.layers):
            if layer_id in absorbed or layer_id in skipped:
                continue
            fused = self._fuse(layer_id, layer, readers, kept, skipped)
            previous = self._folded.get(layer_id)
            if fused is None:
                if previous is not None:
                    self._unfold(previous)
                steps.append(layer_id)
                continue
            if previous is not None and previous.layer_ids == fused.layer_ids:
                fused = previous  # the weights are folded for this very step already
            elif previous is not None:
                self._unfold(previous)
            steps.append(fused)
            absorbed.update(fused.layer_ids[1:])
        return _Plan(steps, self._releases(steps, kept), skipped, self._stages(steps, kept))

    def _fuse(self, layer_id: int, layer: Layer, readers: dict[int, list[int]], kept: AbstractSet[int],
              skipped: set[int]) -> _Fused | None:
        net = self.net
        summing = _plain_sum(layer)
        if not summing and (layer.type not in _FOLDABLE or len(net.bottom_vecs[layer_id]) != 1
                            or not _foldable_base(layer)):
            return None
        current, position = net.top_id_vecs[layer_id][0], layer_id
        absorbed: list[int] = []
        relu = None
        while True:
            following = [j for j in readers.get(current, []) if j > position and j not in skipped]
            if not following:
                break
            j = following[0]
            candidate = net.layers[j]
            top = net.top_id_vecs[j][0] if len(net.top_id_vecs[j]) == 1 else None
            if top is None or len(net.bottom_id_vecs[j]) != 1:
                break
            in_place = top == current
            if not in_place and (len(following) > 1 or current in kept):
                break  # another layer, or the caller, reads the value before this layer
            if candidate.type in _AFFINE and not summing and _per_channel(candidate, layer) and relu is None:
                absorbed.append(j)
            elif candidate.type == "ReLU" and relu is None:
                relu = j
            else:
                break
            current, position = top, j
            if relu is not None:
                break
        if not absorbed and relu is None and not (summing or layer.type == "Convolution"):
            return None  # (a convolution or sum alone still gains: weights and sums stay channels-last)
        if absorbed and layer.type == "InnerProduct" and len(layer.blobs) < 2:
            return None  # its own forward adds the bias: it needs a bias blob to hold the folded one
        return _Fused(layer_id, absorbed, relu, current)

    def _releases(self, steps: Sequence[int | _Fused], kept: AbstractSet[int],
                  slots: Sequence[int] | None = None) -> list[list[int]]:
        """Per step (or per slot, ``slots[i]`` being step i's), the blobs whose storage nobody reads
        after it (storage shared = one blob)."""
        net = self.net
        slots = range(len(steps)) if slots is None else slots
        groups: dict[int, list[int]] = {}
        for blob_id, blob in enumerate(net.blob_list):
            groups.setdefault(blob.data_storage_key(), []).append(blob_id)
        last: dict[int, int] = {}
        for slot, step in zip(slots, steps):
            ids = _layer_ids(step)
            for i in ids:
                for blob_id in (*net.bottom_id_vecs[i], *net.top_id_vecs[i]):
                    key = net.blob_list[blob_id].data_storage_key()
                    last[key] = max(last.get(key, slot), slot)
        releases: list[list[int]] = [[] for _ in range(max(slots, default=-1) + 1)]
        for key, members in groups.items():
            if key in last and not any(m in kept for m in members):
                releases[last[key]].extend(members)
        return releases

    def _stages(self, steps: Sequence[int | _Fused], kept: AbstractSet[int]) -> list[_Stage]:
        """The steps by stages: a step's stage is one past the latest of the steps it must follow
        (the last to write a blob it reads or writes, and, for a blob it writes, those reading the
        value it overwrites; blobs sharing storage count as one). Empty when a step's layer is not
        one of ``_STAGED_TYPES`` (a layer drawing random numbers must keep its turn)."""
        net = self.net
        storage = [blob.data_storage_key() for blob in net.blob_list]
        level: list[int] = []
        needs: list[set[int]] = []
        touching: dict[int, list[int]] = {}  # storage -> the steps that read or write it
        writer: dict[int, int] = {}  # storage -> the step that last wrote it
        readers: dict[int, list[int]] = {}  # storage -> the steps that read it since
        for index, step in enumerate(steps):
            ids = _layer_ids(step)
            if any(net.layers[i].type not in _STAGED_TYPES for i in ids):
                return []
            reads = {storage[b] for i in ids for b in net.bottom_id_vecs[i]}
            writes = {storage[b] for i in ids for b in net.top_id_vecs[i]}
            for s in reads | writes:
                touching.setdefault(s, []).append(index)
            after = {writer[s] for s in reads | writes if s in writer}
            after.update(r for s in writes for r in readers.get(s, ()))
            level.append(1 + max((level[k] for k in after), default=-1))
            needs.append(after)
            for s in reads:
                readers.setdefault(s, []).append(index)
            for s in writes:
                writer[s], readers[s] = index, []
        stages = [_Stage([], released) for released in self._releases(steps, kept, level)]
        for index, stage in enumerate(level):
            stages[stage].steps.append(index)
            stages[stage].needs[index] = needs[index]
        for each in stages:
            each.users = {k for b in each.released for k in touching.get(storage[b], ())}
        return stages

    # ------------------------------------------------------------------ folding
    def _fold(self, step: _Fused) -> None:
        """Fold the absorbed layers into the weights; a convolution's weights then stay in the
        layout its kernel reads (channels-last on the CPU) instead of being converted each pass,
        unless it runs on packed weights (``_packs``: no third copy)."""
        if self._folded.get(step.layer_id) is step:
            return
        layer = self.net.layers[step.layer_id]
        if step.absorbed:
            self._fold_affine(step, layer)
        packed = self._packs(step, self.net.bottom_vecs[step.layer_id][0].shape[0])
        if layer.type == "Convolution" and layout.use_channels_last(layer.blobs[0].data) and not packed:
            weight = layer.blobs[0]
            held = layout.to_channels_last(weight.data)
            if held.data_ptr() != weight.data.data_ptr():
                weight.release_data()
                weight.adopt_data(held)  # read back as row-major whenever someone reads .data
        self._folded[step.layer_id] = step

    def _fold_affine(self, step: _Fused, layer: Layer) -> None:
        net = self.net
        channels = layer.blobs[0].shape[1 if _transposed(layer) else 0]
        factor = torch.ones(channels, dtype=torch.float64)
        shift = torch.zeros(channels, dtype=torch.float64)
        for j in step.absorbed:
            factor, shift = _compose(net.layers[j], factor, shift)
        weight = layer.blobs[0].data
        rows = _rows(layer, weight)
        step.saved_rows = {int(c): rows[c].clone() for c in torch.nonzero(factor == 0).flatten().tolist()}
        _scale_rows(rows, factor, divide=False)
        if len(layer.blobs) > 1:
            bias = layer.blobs[1].data
            bias.copy_((bias.double() * factor + shift).to(bias.dtype))
            step.bias = None
        else:
            step.bias = shift.to(weight.dtype) if step.absorbed else None
        step.factor, step.shift = factor, shift

    def _unfold(self, step: _Fused) -> None:
        """Give the layer its own weights back (before new weights come in, or a new plan)."""
        if self._folded.pop(step.layer_id, None) is None or step.factor is None or step.shift is None:
            return  # nothing folded (the weights' layout comes back by itself when they are read)
        layer = self.net.layers[step.layer_id]
        weight = layer.blobs[0].data
        rows = _rows(layer, weight)
        safe = torch.where(step.factor == 0, torch.ones_like(step.factor), step.factor)
        _scale_rows(rows, safe, divide=True)
        for c, row in step.saved_rows.items():
            rows[c].copy_(row)
        if len(layer.blobs) > 1:
            bias = layer.blobs[1].data
            bias.copy_(((bias.double() - step.shift) / safe).to(bias.dtype))

    def unfold_all(self) -> None:
        for step in list(self._folded.values()):
            self._unfold(step)
        self._plans.clear()


def _layer_ids(step: int | _Fused) -> list[int]:
    """The layers a plan step runs."""
    return step.layer_ids if isinstance(step, _Fused) else [step]


def _tile_size(layer: BaseConvolutionLayer, x_shape: tuple[int, ...]) -> int | None:
    """``winograd.tile_size`` for the layer's convolution of inputs of ``x_shape``."""
    g = layer.geometry
    return winograd.tile_size(x_shape, layer.blobs[0].shape, g.stride, g.pad, g.dilation,
                              layer.param.convolution_param.group)


def _sharing(layer: Layer, workers: Workers) -> Kernel:
    """The forward of a layer that ``shares_work``, on ``workers`` (an inner product's one row of
    input on ``recaffe.math.compiled``'s matrix-vector kernel)."""
    forward: Callable[..., None] = layer.forward  # it takes workers= (Layer.shares_work)
    if isinstance(layer, InnerProductLayer):
        return functools.partial(forward, workers=workers, matvec=compiled.matvec)
    return functools.partial(forward, workers=workers)


def _compiled_lrn(layer: LRNLayer, workers: Workers, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
    p = layer.param.lrn_param
    y = compiled.lrn_across(workers, bottom[0].strided_data(), p.local_size, p.alpha, p.beta, p.k)
    if y is None:
        layer.forward(bottom, top, workers=workers)
    else:
        layout.store(top[0], y)


def _compiled_softmax(layer: SoftmaxLayer, bottom: Sequence[Blob], top: Sequence[Blob]) -> None:
    if not compiled.softmax(bottom[0].data, top[0].data, layer.dims):
        layer.forward(bottom, top)


def _compiled_pool(layer: PoolingLayer, workers: Workers, bottom: Sequence[Blob],
                   top: Sequence[Blob]) -> None:
    ave = layer.param.pooling_param.pool == P.AVE
    y = compiled.pool(workers, bottom[0].strided_data(), layer.window, layer.out_hw, ave)
    if y is None:
        layer.forward(bottom, top, workers=workers)
    else:
        layout.store(top[0], y)


def _transposed(layer: Layer) -> bool:
    return layer.type == "InnerProduct" and layer.param.inner_product_param.transpose


def _rows(layer: Layer, weight: torch.Tensor) -> torch.Tensor:
    """The weight with output channels on axis 0 (a view)."""
    return weight.t() if _transposed(layer) else weight


def _scale_rows(rows: torch.Tensor, factor: torch.Tensor, divide: bool) -> None:
    """``rows[c] *= factor[c]`` (or ``/=``) in double precision, a few MB of rows at a time."""
    step = max(1, (1 << 20) // max(1, rows[0].numel()))
    for first in range(0, rows.shape[0], step):
        piece = rows[first : first + step]
        column = factor[first : first + step].view(-1, *([1] * (rows.dim() - 1)))
        piece.copy_((piece.double() / column if divide else piece.double() * column).to(rows.dtype))


def _plain_sum(layer: Layer) -> bool:
    """An Eltwise SUM with every coefficient 1: its ReLU can run on its output in the same step."""
    p = layer.param.eltwise_param
    return (layer.type == "Eltwise" and p.operation == caffe_pb2.EltwiseParameter.SUM
            and all(c == 1 for c in p.coeff))


def _foldable_base(layer: Layer) -> bool:
    """Channels on axis 1 of the output (the axis BatchNorm and Scale act on)."""
    return getattr(layer, "axis", None) == 1 and not getattr(layer, "transposed", False)


def _per_channel(candidate: Layer, base: Layer) -> bool:
    """An affine layer acting on axis 1 with one value per channel of ``base``'s output."""
    channels = base.blobs[0].shape[1 if _transposed(base) else 0]
    if candidate.type == "BatchNorm":
        return bool(getattr(candidate, "use_global_stats", False)) and \
            getattr(candidate, "channels", -1) == channels
    p = candidate.param.scale_param if candidate.type == "Scale" else candidate.param.bias_param
    return (p.axis == 1 and p.num_axes == 1 and len(candidate.blobs) >= 1
            and candidate.blobs[0].shape == (channels,))


def _compose(layer: Layer, factor: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Follow ``y = x·factor + shift`` with the affine map ``layer`` applies per channel."""
    blobs = [blob.data.double().cpu() for blob in layer.blobs]
    if layer.type == "BatchNorm":
        s = float(blobs[2][0])
        scale = 0.0 if s == 0 else 1.0 / s
        mean, var = blobs[0] * scale, blobs[1] * scale
        inv = 1.0 / torch.sqrt(var + layer.param.batch_norm_param.eps)
        return factor * inv, (shift - mean) * inv
    if layer.type == "Scale":
        gamma = blobs[0]
        beta = blobs[1] if len(blobs) > 1 else torch.zeros_like(gamma)
        return factor * gamma, shift * gamma + beta
    return factor, shift + blobs[0]  # Bias
