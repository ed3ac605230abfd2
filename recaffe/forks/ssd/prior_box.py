from __future__ import annotations

from typing import final

import torch

from recaffe import forks
from recaffe.layer import Blobs, Layer
from recaffe.registry import LAYERS


@LAYERS.register("PriorBox", dialect="ssd")
@final
class PriorBoxLayer(Layer):
    """SSD's PriorBox: the default boxes of one feature map, in image-normalized corners.

    Forward: for each cell (h, w) of the feature map, centre ((w + offset)·step_w,
        (h + offset)·step_h), and for each min_size s: a box s×s; if max_size S is given, a box
        sqrt(sS)×sqrt(sS); then for each aspect ratio r ≠ 1 a box s·sqrt(r) × s/sqrt(r). Corners
        (xmin, ymin, xmax, ymax) are divided by the image width/height, clipped to [0, 1] with
        clip. Channel 1 repeats the 4 variances for every box. Float and double as in the fork.
    Backward: none (the fork's is empty).
    Params (prior_box_param): min_size (required, repeated), max_size (one per min_size),
        aspect_ratio (duplicates ignored; 1 always first), flip=true (adds 1/r), clip=false,
        variance (none: 0.1; one; or four), img_size | img_h/img_w (default: bottom[1]'s),
        step | step_h/step_w (default: image size / feature size), offset=0.5.
    Bottoms: feature map (N×C×H×W), image (N×C×H'×W'). Tops: priors (1×2×H·W·num_priors·4).
    In place: no.
    """

    exact_num_bottom_blobs = 2
    exact_num_top_blobs = 1
    supports_in_place = False

    def layer_setup(self, bottom: Blobs, top: Blobs) -> None:
        p = forks.get_dialect("ssd").fork_param(self.param).prior_box_param
        self.min_sizes, self.max_sizes = list(p.min_size), list(p.max_size)
        if not self.min_sizes or any(s <= 0 for s in self.min_sizes):
            raise self.error("prior_box_param.min_size must be given, each > 0")
        if self.max_sizes and len(self.max_sizes) != len(self.min_sizes):
            raise self.error(f"prior_box_param gives {len(self.max_sizes)} max_size for "
                             f"{len(self.min_sizes)} min_size (one per min_size, or none)")
        for low, high in zip(self.min_sizes, self.max_sizes):
            if high <= low:
                raise self.error(f"prior_box_param.max_size {high} must exceed its min_size {low}")
        self.aspect_ratios = [1.0]
        for ratio in p.aspect_ratio:
            if any(abs(ratio - known) < 1e-6 for known in self.aspect_ratios):
                continue
            self.aspect_ratios.append(ratio)
            if p.flip:
                self.aspect_ratios.append(1.0 / ratio)
        self.num_priors = len(self.aspect_ratios) * len(self.min_sizes) + len(self.max_sizes)
        self.clip, self.offset = p.clip, p.offset
        variance = list(p.variance) or [0.1]
        if len(variance) not in (1, 4) or any(v <= 0 for v in variance):
            raise self.error(f"prior_box_param.variance must be 1 or 4 values, each > 0; got {variance}")
        self.variance = variance * 4 if len(variance) == 1 else variance
        self.img_h, self.img_w = self._pair(p, "img_size", "img_h", "img_w")
        self.step_h, self.step_w = self._pair(p, "step", "step_h", "step_w")

    def _pair(self, p: object, both: str, first: str, second: str) -> tuple[float, float]:
        has = p.HasField  # type: ignore[attr-defined]
        if has(both) and (has(first) or has(second)):
            raise self.error(f"prior_box_param: give either {both} or {first}/{second}, not both")
        if has(both):
            value = getattr(p, both)
            return value, value
        if has(first) != has(second):
            raise self.error(f"prior_box_param: give both {first} and {second}")
        return (getattr(p, first), getattr(p, second)) if has(first) else (0, 0)

    def reshape(self, bottom: Blobs, top: Blobs) -> None:
        height, width = bottom[0].shape[2], bottom[0].shape[3]
        top[0].reshape(1, 2, height * width * self.num_priors * 4)

    def forward(self, bottom: Blobs, top: Blobs) -> None:
        layer_h, layer_w = bottom[0].shape[2], bottom[0].shape[3]
        img_h = self.img_h or bottom[1].shape[2]
        img_w = self.img_w or bottom[1].shape[3]
        f32 = torch.float32
        step_h = torch.tensor(float(self.step_h or img_h), dtype=f32) / (1 if self.step_h else layer_h)
        step_w = torch.tensor(float(self.step_w or img_w), dtype=f32) / (1 if self.step_w else layer_w)
        offset = torch.tensor(self.offset, dtype=f32)
        cy = (torch.arange(layer_h, dtype=f32) + offset) * step_h
        cx = (torch.arange(layer_w, dtype=f32) + offset) * step_w
        sizes = []  # (box width, box height) in the fork's order, in float as the fork
        for i, size in enumerate(self.min_sizes):
            low = torch.tensor(size, dtype=f32)
            sizes.append((low, low))
            if self.max_sizes:
                side = torch.sqrt(low * torch.tensor(self.max_sizes[i], dtype=f32))
                sizes.append((side, side))
            for ratio in self.aspect_ratios[1:]:
                root = torch.sqrt(torch.tensor(ratio, dtype=f32))
                sizes.append((low * root, low / root))
        # the fork divides the float box size by the double 2. and the integer image size: double
        half = torch.tensor([[float(w), float(h)] for w, h in sizes], dtype=torch.float64) / 2
        cx, cy = cx.double().view(1, -1, 1), cy.double().view(-1, 1, 1)
        half_w, half_h = half[:, 0].view(1, 1, -1), half[:, 1].view(1, 1, -1)
        corners = torch.stack(torch.broadcast_tensors(
            (cx - half_w) / img_w, (cy - half_h) / img_h, (cx + half_w) / img_w, (cy + half_h) / img_h,
        ), -1).float()
        if self.clip:
            corners = corners.clamp(0, 1)
        out = top[0].data.view(2, -1, 4)
        out[0].copy_(corners.reshape(-1, 4))
        out[1].copy_(torch.tensor(self.variance, dtype=f32).expand(out.shape[1], 4))
