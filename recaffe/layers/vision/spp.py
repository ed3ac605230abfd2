from __future__ import annotations

import math
from collections.abc import Sequence
from typing import final

from recaffe.blob import Blob
from recaffe.layer import Blobs, Layer
from recaffe.layers.vision.pooling import PoolingLayer
from recaffe.layers.vision.shapes import require_4d
from recaffe.proto import caffe_pb2
from recaffe.registry import LAYERS


@LAYERS.register("SPP")
@final
class SPPLayer(Layer):
    """Spatial pyramid pooling: level l pools the image into about 2^l × 2^l bins.

    Level l (0 ≤ l < pyramid_height) is an internal Pooling layer with bins = 2^l and, per axis,
    kernel = ceil(H / bins), pad = (kernel·bins − H + 1) / 2 (integer division), stride = kernel.
    Forward: pyramid_height 1 gives that pooling's (N, C, PH, PW) top as it is; otherwise every
        level is flattened to (N, C·PH·PW) and the levels are concatenated (level 0 first).
    Backward: top.diff is split back to the levels, sent through each pooling's backward, and the
        bottom diffs are summed.
    Params (spp_param): pyramid_height (≥ 1, required); pool=MAX (MAX/AVE/STOCHASTIC); engine.
        The internal poolings run in phase TRAIN, as Caffe builds them; their CHECKs apply (e.g.
        a level with pad ≥ kernel, when 2^l > H, is refused).
    Bottoms: x (N, C, H, W).
    Tops: (N, C·Σ_l PH_l·PW_l), or (N, C, PH, PW) when pyramid_height is 1.
    In place: no.
    """

    exact_num_bottom_blobs = 1
    exact_num_top_blobs = 1

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        height = self.param.spp_param.pyramid_height
        if height < 1:
            raise self.error(f"spp_param.pyramid_height must be >= 1, got {height}")
        self.hw: tuple[int, ...] = ()
        self.levels: list[PoolingLayer] = []
        self.outputs = [Blob(dtype=self.dtype, device=self.device) for _ in range(height)]
        self.level_bottom = Blob(dtype=self.dtype, device=self.device)  # bottom's data, own diff

    def _pooling(self, level: int, h: int, w: int) -> PoolingLayer:
        param = caffe_pb2.LayerParameter(name=f"{self.name}/level{level}", type="Pooling")
        p, bins = param.pooling_param, 2**level
        p.pool = caffe_pb2.PoolingParameter.PoolMethod.ValueType(self.param.spp_param.pool)  # same numbers
        p.kernel_h, p.kernel_w = (math.ceil(n / bins) for n in (h, w))
        p.stride_h, p.stride_w = p.kernel_h, p.kernel_w
        p.pad_h, p.pad_w = ((k * bins - n + 1) // 2 for k, n in ((p.kernel_h, h), (p.kernel_w, w)))
        return PoolingLayer(param, dtype=self.dtype, device=self.device)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        require_4d(self, bottom[0])
        n, _, h, w = bottom[0].shape
        if h == 0 or w == 0:
            raise self.error(f"input dimensions cannot be zero, got {bottom[0].shape}")
        tops = top if len(self.outputs) == 1 else self.outputs
        if (h, w) != self.hw:  # the pooling geometry follows the input size
            self.hw = (h, w)
            self.levels = [self._pooling(i, h, w) for i in range(len(self.outputs))]
            for level, out in zip(self.levels, tops):
                level.setup(bottom, [out])
        for level, out in zip(self.levels, tops):
            level.reshape(bottom, [out])
        if len(self.outputs) > 1:
            self.level_bottom.reshape_like(bottom[0])
            self.level_bottom.share_data(bottom[0])
            top[0].reshape(n, sum(out.count(1) for out in self.outputs))

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        if len(self.outputs) == 1:
            self.levels[0].forward(bottom, top)
            return
        start, y = 0, top[0].data
        for level, out in zip(self.levels, self.outputs):
            level.forward(bottom, [out])
            y[:, start: start + out.count(1)] = out.data.view(out.shape[0], -1)
            start += out.count(1)

    def backward(self, top: Blobs, propagate_down: Sequence[bool], bottom: Blobs) -> None:
        if not propagate_down[0]:
            return
        if len(self.outputs) == 1:
            self.levels[0].backward(top, propagate_down, bottom)
            return
        bottom[0].diff.zero_()
        start = 0
        for level, out in zip(self.levels, self.outputs):
            out.diff.view(out.shape[0], -1).copy_(top[0].diff[:, start: start + out.count(1)])
            start += out.count(1)
            level.backward([out], [True], [self.level_bottom])
            bottom[0].diff.add_(self.level_bottom.diff)
