from __future__ import annotations

from collections.abc import Sequence
from typing import final

import torch

from recaffe import rng
from recaffe.blob import Blob
from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.shapes import require_4d
from recaffe.math import layout, pieces, pooling
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS
from recaffe.workers import SERIAL, Workers

P = caffe_pb2.PoolingParameter


@LAYERS.register("Pooling")
@final
class PoolingLayer(Layer):
    """2-D MAX, AVE or STOCHASTIC pooling over windows clipped to the image.

    Forward: MAX = the window's first maximum (strict >), the mask its flat index h·W + w;
        AVE = Σ clipped window / pool size, where the size counts padding cells inside H + pad;
        STOCHASTIC (Caffe implements it on GPU only) = TRAIN: an element drawn with probability
        ∝ its value (uniform draws from Caffe's random stream), TEST: Σx² / Σx.
    Backward: MAX and STOCHASTIC route each top diff to the chosen element (the mask in top[1]
        when given); AVE spreads top diff / pool size over the clipped window.
    Output size: ceil (CEIL) or floor (FLOOR) of (H + 2·pad − kernel) / stride, + 1; with any
        pad, a last window starting at or beyond H + pad is dropped.
    Params (pooling_param): pool=MAX (MAX/AVE/STOCHASTIC); kernel_size, or kernel_h and kernel_w
        (required unless global_pooling); pad=0 or pad_h+pad_w (MAX/AVE only, pad < kernel);
        stride=1 or stride_h+stride_w; global_pooling=false (kernel = H×W; needs pad 0, stride 1);
        round_mode=CEIL; engine (no effect).
    Bottoms: x (N, C, H, W).
    Tops: y (N, C, PH, PW); MAX only: optional mask (N, C, PH, PW) as float indices.
    In place: no.
    """

    exact_num_bottom_blobs = 1
    min_top_blobs = 1
    max_top_blobs = 2
    shares_work = True

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = self.param.pooling_param
        if len(top) > 1 and p.pool != P.MAX:
            raise self.error(f"only MAX pooling has a second (mask) top; got {len(top)} tops "
                             f"with pool {P.PoolMethod.Name(p.pool)}")
        if p.pool == P.STOCHASTIC and self.device.type == "cpu":
            raise self.error("STOCHASTIC pooling is GPU-only in Caffe (NOT_IMPLEMENTED on CPU); "
                             "put the net on a CUDA device or use MAX/AVE")
        self.kernel = self._kernel(p)
        self.pad = self._pair(p, "pad", 0)
        self.stride = self._pair(p, "stride", 1)
        if 0 in self.stride:
            raise self.error(f"stride must be nonzero, got {self.stride}")
        if p.global_pooling and (any(self.pad) or self.stride != (1, 1)):
            raise self.error(f"with global_pooling only pad = 0 and stride = 1 are allowed, "
                             f"got pad {self.pad} and stride {self.stride}")
        if any(self.pad):
            if p.pool not in (P.AVE, P.MAX):
                raise self.error("padding is implemented only for AVE and MAX pooling")
            if self.kernel and not all(a < k for a, k in zip(self.pad, self.kernel)):
                raise self.error(f"pad {self.pad} must be smaller than kernel {self.kernel}")
        self.max_idx, self.max_complete = torch.empty(0, dtype=torch.long), True
        self.rand_idx = torch.empty(0, dtype=torch.long)

    def _kernel(self, p: caffe_pb2.PoolingParameter) -> tuple[int, int] | None:
        """(kernel_h, kernel_w), or None for global pooling (set from the input in reshape)."""
        has_hw = p.HasField("kernel_h") and p.HasField("kernel_w")
        if p.global_pooling:
            if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
                raise self.error("with global_pooling: true the filter size cannot be specified")
            return None
        if p.HasField("kernel_size") == has_hw:
            raise self.error("filter size is kernel_size OR kernel_h and kernel_w (both are "
                             "required for non-square filters); not both, not neither")
        kernel = (p.kernel_size, p.kernel_size) if p.HasField("kernel_size") else (p.kernel_h, p.kernel_w)
        if 0 in kernel:
            raise self.error(f"filter dimensions cannot be zero, got {kernel}")
        return kernel

    def _pair(self, p: caffe_pb2.PoolingParameter, name: str, default: int) -> tuple[int, int]:
        """``name`` (default ``default``) or ``name_h`` + ``name_w``, never both forms."""
        has = p.HasField  # a field name built at run time: not one of the stub's literals
        has_h, has_w = has(f"{name}_h"), has(f"{name}_w")  # type: ignore[arg-type]
        if (has_h or has_w) and (has(name) or not (has_h and has_w)):  # type: ignore[arg-type]
            raise self.error(f"{name} is {name} OR {name}_h and {name}_w are required")
        return (getattr(p, f"{name}_h"), getattr(p, f"{name}_w")) if has_h else (getattr(p, name),) * 2

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        n, c, h, w = bottom[0].shape
        p = self.param.pooling_param
        self.window = pooling.PoolWindow(self.kernel or (h, w), self.stride, self.pad, p.round_mode == P.CEIL)
        self.out_hw = self.window.output_shape((h, w))
        if min(self.out_hw) < 1:
            raise self.error(f"pooled size {self.out_hw} from input {h}x{w} is empty "
                             f"(kernel {self.window.kernel}, pad {self.pad}, stride {self.stride})")
        for blob in top:
            blob.reshape(n, c, *self.out_hw)
        if p.pool == P.STOCHASTIC and self.rand_idx.shape != top[0].shape:
            # Nothing sampled yet (TEST never samples): backward routes no gradient.
            self.rand_idx = torch.full(top[0].shape, -1, dtype=torch.long, device=self.device)

    def forward(self, bottom: Blobs, top: Blobs, workers: Workers = SERIAL) -> None:
        x, pool = bottom[0].strided_data(), self.param.pooling_param.pool
        plain = pool == P.AVE or (pool == P.MAX and len(top) == 1 and not self.need_backward)
        if plain and workers.count > 1:  # the values alone: whole images on each thread
            y = pieces.per_image(workers, x, (*x.shape[:2], *self.out_hw), self._values)
        elif pool == P.MAX:
            mask = len(top) > 1
            y, index, self.max_complete = pooling.max_pool(x, self.window, self.out_hw,
                                                           with_index=mask or self.need_backward)
            if index is not None and mask:
                top[1].data.copy_(index)
            elif index is not None:
                self.max_idx = index
        elif pool == P.AVE:
            y = pooling.ave_pool(x, self.window, self.out_hw)
        else:
            y, index = pooling.stochastic_pool(x, self.window, self.out_hw, self._uniform(top[0]))
            if index is not None:
                self.rand_idx = index
        layout.store(top[0], y)

    def _values(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled values of ``x`` (MAX or AVE)."""
        if self.param.pooling_param.pool == P.AVE:
            return pooling.ave_pool(x, self.window, self.out_hw)
        return pooling.max_pool(x, self.window, self.out_hw, with_index=False)[0]

    def _uniform(self, top: Blob) -> torch.Tensor | None:
        """TRAIN: one uniform [0, 1] draw per top element from Caffe's random stream; TEST: None."""
        if self.phase != caffe_pb2.TRAIN:
            return None
        draws = torch.from_numpy(rng.get_rng().uniform(top.count(), 0.0, 1.0))
        return draws.to(device=top.data.device, dtype=top.data.dtype).view(top.shape)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        dy, x, pool = top[0].strided_diff(), bottom[0].strided_data(), self.param.pooling_param.pool
        if pool == P.AVE:
            dx = pooling.ave_pool_backward(dy, x, self.window)
        elif pool == P.MAX:
            index, complete = self.max_idx, self.max_complete
            if len(top) > 1:  # the mask top may have been changed since
                index = top[1].data.long()
                complete = pooling.all_above(index, -1)
            dx = pooling.max_pool_backward(dy, x, self.window, index, complete)
        else:
            dx = pooling.scatter_to_index(dy, self.rand_idx, (x.shape[2], x.shape[3]))
        layout.store(bottom[0], dx, diff=True)
