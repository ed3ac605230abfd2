"""SSD's data augmentation for annotated images (the fork's data_transformer.cpp, util/sampler.cpp,
util/im_transforms.cpp, util/bbox_util.cpp): photometric distortion, expansion, batch sampling
of crops under constraints, resizing, and the matching moves of the boxes.

Images are HWC uint8 arrays (BGR, as Caffe's OpenCV code holds them); annotations are lists of
``Group(label, boxes)`` whose boxes are ``Box`` rows (instance_id, xmin, ymin, xmax, ymax,
difficult) in coordinates normalized to the image, float32 as the fork's NormalizedBBox.

Random draws come from ``stream`` (the prefetch thread's Caffe RNG: ``caffe_rng_uniform`` and
``caffe_rng_rand``), in the fork's order; the channel shuffle of the distortion draws from a
glibc ``rand()`` stream (``std::random_shuffle``) as the fork does, but one owned by the data
layer (seeded as a fresh process's) rather than the process-wide one, so that two data layers
prefetching at once cannot change each other's draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from recaffe import rng
from recaffe.data import DataError, crand, image

F32 = np.float32


@dataclass
class Box:
    instance_id: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False

    def size(self) -> float:
        """BBoxSize (normalized): 0 for an inverted box."""
        w, h = F32(self.xmax) - F32(self.xmin), F32(self.ymax) - F32(self.ymin)
        return 0.0 if w < 0 or h < 0 else float(F32(w * h))


@dataclass
class Group:
    label: int
    boxes: list[Box] = field(default_factory=list)


Region = tuple[float, float, float, float]  # a normalized box (xmin, ymin, xmax, ymax)


def _f(x: float | np.floating) -> float:
    return float(F32(x))


def intersect(a: Region, b: Region) -> Region:
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return (0.0, 0.0, 0.0, 0.0)
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def region_size(r: Region) -> float:
    w, h = F32(r[2]) - F32(r[0]), F32(r[3]) - F32(r[1])
    return 0.0 if w < 0 or h < 0 else float(F32(w * h))


def jaccard(a: Region, b: Region) -> float:
    i = intersect(a, b)
    w, h = F32(i[2]) - F32(i[0]), F32(i[3]) - F32(i[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = F32(w * h)
    return float(inter / (F32(region_size(a)) + F32(region_size(b)) - inter))


def coverage(a: Region, b: Region) -> float:
    """BBoxCoverage: the part of ``a`` that ``b`` covers."""
    inter = region_size(intersect(a, b))
    return float(F32(inter) / F32(region_size(a))) if inter > 0 else 0.0


def clip(r: Region) -> Region:
    return (
        min(max(r[0], 0.0), 1.0),
        min(max(r[1], 0.0), 1.0),
        min(max(r[2], 0.0), 1.0),
        min(max(r[3], 0.0), 1.0),
    )


def region(box: Box) -> Region:
    return (box.xmin, box.ymin, box.xmax, box.ymax)


# ------------------------------------------------------------------------- annotations
def meets_emit_constraint(src: Region, box: Region, constraint: Any) -> bool:
    """MeetEmitConstraint: CENTER (the box's centre inside ``src``) or MIN_OVERLAP (the part of the
    box inside ``src`` above emit_overlap)."""
    if constraint.emit_type == constraint.CENTER:
        cx, cy = _f((box[0] + box[2]) / 2), _f((box[1] + box[3]) / 2)
        return src[0] <= cx <= src[2] and src[1] <= cy <= src[3]
    return coverage(box, src) > constraint.emit_overlap


def project(src: Region, box: Box) -> Box | None:
    """ProjectBBox: ``box`` in the coordinates of ``src``, clipped; None if nothing is left."""
    if box.xmin >= src[2] or box.xmax <= src[0] or box.ymin >= src[3] or box.ymax <= src[1]:
        return None
    w, h = F32(src[2]) - F32(src[0]), F32(src[3]) - F32(src[1])
    moved = (
        _f((F32(box.xmin) - F32(src[0])) / w),
        _f((F32(box.ymin) - F32(src[1])) / h),
        _f((F32(box.xmax) - F32(src[0])) / w),
        _f((F32(box.ymax) - F32(src[1])) / h),
    )
    out = Box(box.instance_id, *clip(moved), box.difficult)
    return out if out.size() > 0 else None


def transform_groups(
    groups: list[Group],
    crop: Region,
    mirror: bool,
    emit: Any | None,
    resize: Any | None = None,
    image_size: tuple[int, int] = (0, 0),
) -> list[Group]:
    """TransformAnnotation: each box (moved by the resize policy when given) that meets the emit
    constraint and overlaps ``crop`` is projected into it, mirrored when asked, and extrapolated
    (FIT_SMALL_SIZE scales); groups left empty are dropped. ``image_size`` is the (height,
    width) before resizing."""
    out = []
    for group in groups:
        kept = Group(group.label)
        for box in group.boxes:
            if resize is not None:
                box = resize_box(resize, image_size[1], image_size[0], box)
            if emit is not None and not meets_emit_constraint(crop, region(box), emit):
                continue
            moved = project(crop, box)
            if moved is None:
                continue
            if mirror:
                moved = replace(moved, xmin=_f(1 - moved.xmax), xmax=_f(1 - moved.xmin))
            if resize is not None:
                moved = extrapolate(resize, image_size, crop, moved)
            kept.boxes.append(moved)
        if kept.boxes:
            out.append(kept)
    return out


def extrapolate(p: Any, image_size: tuple[int, int], crop: Region, box: Box) -> Box:
    """ExtrapolateBBox: with FIT_SMALL_SIZE and height_scale/width_scale, boxes are scaled by the
    crop's size in the resized image over those scales (unchanged otherwise)."""
    if not (p.height_scale > 0 and p.width_scale > 0 and p.resize_mode == p.FIT_SMALL_SIZE):
        return box
    height, width = image_size
    aspect = F32(width) / F32(height)
    resize_h, resize_w = F32(p.height), F32(p.width)
    if aspect < resize_w / resize_h:
        resize_h = F32(resize_w / aspect)
    else:
        resize_w = F32(resize_h * aspect)
    crop_h = F32(resize_h * (F32(crop[3]) - F32(crop[1])))
    crop_w = F32(resize_w * (F32(crop[2]) - F32(crop[0])))
    if crop_w < p.width_scale or crop_h < p.height_scale:
        raise DataError(
            f"resize_param: the crop ({crop_w:g}x{crop_h:g} after resizing) is smaller than "
            f"width_scale x height_scale ({p.width_scale}x{p.height_scale})"
        )
    fx, fy = F32(crop_w / F32(p.width_scale)), F32(crop_h / F32(p.height_scale))
    return replace(
        box,
        xmin=_f(F32(box.xmin) * fx),
        xmax=_f(F32(box.xmax) * fx),
        ymin=_f(F32(box.ymin) * fy),
        ymax=_f(F32(box.ymax) * fy),
    )


def resize_box(p: Any, old_w: int, old_h: int, box: Box) -> Box:
    """UpdateBBoxByResizePolicy: where the box lands in the resized image (normalized)."""
    new_h, new_w = F32(p.height), F32(p.width)
    orig_aspect = F32(old_w) / F32(old_h)
    new_aspect = new_w / new_h
    x0, y0 = F32(box.xmin) * F32(old_w), F32(box.ymin) * F32(old_h)
    x1, y1 = F32(box.xmax) * F32(old_w), F32(box.ymax) * F32(old_h)

    def scaled(v: np.float32, new: np.float32, old: int, low: bool) -> np.float32:
        value = F32(v * new / F32(old))
        return max(F32(0), value) if low else min(new, value)

    if p.resize_mode == p.FIT_LARGE_SIZE_AND_PAD:
        if orig_aspect > new_aspect:
            pad = F32((new_h - new_w / orig_aspect) / F32(2))
            x0, x1 = scaled(x0, new_w, old_w, True), scaled(x1, new_w, old_w, False)
            y0 = pad + max(F32(0), F32(y0 * (new_h - F32(2) * pad) / F32(old_h)))
            y1 = pad + min(new_h, F32(y1 * (new_h - F32(2) * pad) / F32(old_h)))
        else:
            pad = F32((new_w - orig_aspect * new_h) / F32(2))
            x0 = pad + max(F32(0), F32(x0 * (new_w - F32(2) * pad) / F32(old_w)))
            x1 = pad + min(new_w, F32(x1 * (new_w - F32(2) * pad) / F32(old_w)))
            y0, y1 = scaled(y0, new_h, old_h, True), scaled(y1, new_h, old_h, False)
    else:
        if p.resize_mode == p.FIT_SMALL_SIZE:
            if orig_aspect < new_aspect:
                new_h = F32(new_w / orig_aspect)
            else:
                new_w = F32(orig_aspect * new_h)
        x0, x1 = scaled(x0, new_w, old_w, True), scaled(x1, new_w, old_w, False)
        y0, y1 = scaled(y0, new_h, old_h, True), scaled(y1, new_h, old_h, False)
    return replace(box, xmin=_f(x0 / new_w), ymin=_f(y0 / new_h), xmax=_f(x1 / new_w), ymax=_f(y1 / new_h))


# ---------------------------------------------------------------------------- sampling
def satisfies(sample: Region, objects: list[Region], constraint: Any) -> bool:
    """SatisfySampleConstraint: no constraint, or some object meets every constraint given."""
    has = constraint.HasField
    jac = has("min_jaccard_overlap") or has("max_jaccard_overlap")
    sam = has("min_sample_coverage") or has("max_sample_coverage")
    obj = has("min_object_coverage") or has("max_object_coverage")
    if not (jac or sam or obj):
        return True
    for box in objects:
        checks = []
        if jac:
            checks.append((jaccard(sample, box), "jaccard_overlap"))
        if sam:
            checks.append((coverage(sample, box), "sample_coverage"))
        if obj:
            checks.append((coverage(box, sample), "object_coverage"))
        ok = True
        for value, name in checks:
            if has(f"min_{name}") and value < getattr(constraint, f"min_{name}"):
                ok = False
                break
            if has(f"max_{name}") and value > getattr(constraint, f"max_{name}"):
                ok = False
                break
        if ok:
            return True
    return False


def sample_region(sampler: Any, stream: rng.CaffeRNG) -> Region:
    """SampleBBox: a random scale and aspect ratio (kept within [scale², 1/scale²]), then a
    random position inside the unit square."""
    if not 0 < sampler.min_scale <= sampler.max_scale <= 1:
        raise DataError(
            f"batch_sampler: need 0 < min_scale <= max_scale <= 1, got {sampler.min_scale}, "
            f"{sampler.max_scale}"
        )
    if not 0 < sampler.min_aspect_ratio <= sampler.max_aspect_ratio:
        raise DataError(
            f"batch_sampler: need 0 < min_aspect_ratio <= max_aspect_ratio, got "
            f"{sampler.min_aspect_ratio}, {sampler.max_aspect_ratio}"
        )
    scale = stream.uniform(1, sampler.min_scale, sampler.max_scale)[0]
    ratio = stream.uniform(1, sampler.min_aspect_ratio, sampler.max_aspect_ratio)[0]
    ratio = max(ratio, F32(float(scale) ** 2))
    ratio = min(ratio, F32(1 / float(scale) ** 2))
    width = F32(scale * F32(math.sqrt(ratio)))  # float sqrt (std::sqrt of a float), float product
    height = F32(scale / F32(math.sqrt(ratio)))
    # a side rounded a hair above 1 would make the fork's CHECK fail; the range is empty then
    w_off = stream.uniform(1, 0, max(0.0, float(F32(1) - width)))[0]
    h_off = stream.uniform(1, 0, max(0.0, float(F32(1) - height)))[0]
    return (float(w_off), float(h_off), _f(w_off + width), _f(h_off + height))


def generate_samples(groups: list[Group], samplers: list[Any], stream: rng.CaffeRNG) -> list[Region]:
    """GenerateBatchSamples: for each batch_sampler (with use_original_image), up to max_trials
    draws, keeping those that satisfy its constraint, until max_sample are kept."""
    objects = [region(b) for g in groups for b in g.boxes]
    found_all: list[Region] = []
    for sampler in samplers:
        if not sampler.use_original_image:
            continue
        found = 0
        for _ in range(sampler.max_trials):
            if sampler.HasField("max_sample") and found >= sampler.max_sample:
                break
            sample = sample_region(sampler.sampler, stream)  # located in the unit box: unchanged
            if satisfies(sample, objects, sampler.sample_constraint):
                found += 1
                found_all.append(sample)
    return found_all


# ------------------------------------------------------------------------------ images
def crop_image(img: np.ndarray, r: Region) -> np.ndarray:
    """CropImage: the pixels of the clipped region, offsets and sizes truncated to int."""
    h, w = img.shape[:2]
    c = clip(r)
    x0, y0, x1, y1 = F32(c[0]) * F32(w), F32(c[1]) * F32(h), F32(c[2]) * F32(w), F32(c[3]) * F32(h)
    w_off, h_off = int(x0), int(y0)
    width, height = int(F32(x1 - x0)), int(F32(y1 - y0))
    return np.ascontiguousarray(img[h_off : h_off + height, w_off : w_off + width])


def expand_image(
    img: np.ndarray, ratio: np.float32, fill: np.ndarray, stream: rng.CaffeRNG
) -> tuple[np.ndarray, Region]:
    """ExpandImage: the image placed at a random whole-pixel offset in a canvas ``ratio`` times
    its size, filled with ``fill`` (per channel); returns the canvas and where the image's unit
    box lies in the canvas' coordinates."""
    h, w, c = img.shape
    height, width = int(F32(h) * ratio), int(F32(w) * ratio)
    h_off = math.floor(stream.uniform(1, 0, float(height - h))[0])
    w_off = math.floor(stream.uniform(1, 0, float(width - w))[0])
    canvas = np.empty((height, width, c), dtype=np.uint8)
    canvas[:] = fill
    canvas[h_off : h_off + h, w_off : w_off + w] = img
    where = (_f(-w_off / w), _f(-h_off / h), _f((width - w_off) / w), _f((height - h_off) / h))
    return canvas, where


def convert_scale(img: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """cv::Mat::convertTo(-1, alpha, beta) of uint8 pixels: round to nearest even, saturate."""
    return np.clip(np.rint(img.astype(np.float32) * F32(alpha) + F32(beta)), 0, 255).astype(np.uint8)


_HSV_SHIFT = 12


def _hsv_tables() -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's sdiv_table and hdiv_table180: round((255 << 12) / i), round((180 << 12) / (6 i))."""
    i = np.arange(256, dtype=np.float64)
    with np.errstate(divide="ignore"):
        sdiv = np.where(i > 0, np.rint((255 << _HSV_SHIFT) / i), 0)
        hdiv = np.where(i > 0, np.rint((180 << _HSV_SHIFT) / (6 * i)), 0)
    return sdiv.astype(np.int64), hdiv.astype(np.int64)


_SDIV, _HDIV = _hsv_tables()


def bgr_to_hsv(img: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit BGR2HSV, its fixed-point arithmetic: H in [0, 180), S and V in [0, 255]."""
    b, g, r = (img[..., i].astype(np.int64) for i in range(3))
    v = np.maximum(np.maximum(b, g), r)
    diff = v - np.minimum(np.minimum(b, g), r)
    half = 1 << (_HSV_SHIFT - 1)
    s = (diff * _SDIV[v] + half) >> _HSV_SHIFT
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * _HDIV[diff] + half) >> _HSV_SHIFT
    h = np.where(h < 0, h + 180, h)
    return np.stack([h, s, v], -1).astype(np.uint8)


# OpenCV's sector_data: which of (v, v(1-s), v(1-sh), v(1-s(1-h))) is b, g, r in each sixth of the hue
_SECTORS = np.array([[1, 3, 0], [1, 0, 2], [3, 0, 1], [0, 2, 1], [0, 1, 3], [2, 1, 0]])
_SIMD_BLOCK = 32  # pixels of a row OpenCV's AVX2 loop converts at a time (4 vectors of 8 floats)


def hsv_to_bgr(hsv: np.ndarray) -> np.ndarray:
    """OpenCV 4's 8-bit HSV2BGR as opencv-python runs it on x86-64 (AVX2 with FMA): per row, the
    pixels in whole blocks of 32 take the vector path (products fused, values truncated), the
    rest the scalar one (fmod, rounded). H is scaled by 6/180, S and V by 1/255, in float32."""
    f = np.float32
    h = hsv[..., 0].astype(f) * f(6.0 / 180.0)
    s = hsv[..., 1].astype(f) * f(1.0 / 255.0)
    v = hsv[..., 2].astype(f) * f(1.0 / 255.0)
    columns = np.arange(hsv.shape[1])
    vector = np.broadcast_to((columns < hsv.shape[1] // _SIMD_BLOCK * _SIMD_BLOCK)[None, :], h.shape)
    whole = np.where(vector, np.trunc(h), np.floor(np.fmod(h, f(6))))
    frac = np.where(vector, h - whole, np.fmod(h, f(6)) - whole).astype(f)
    sector = np.where(vector, whole - np.trunc(whole * f(1.0 / 6.0)) * f(6), whole).astype(np.int64)
    one = f(1)
    fused = (one - s.astype(np.float64) * frac.astype(np.float64)).astype(f)  # fma(-s, h, 1)
    fused_rest = (one - s.astype(np.float64) * (one - frac).astype(np.float64)).astype(f)
    tab = np.stack([v, v * (one - s), v * np.where(vector, fused, one - s * frac),
                    v * np.where(vector, fused_rest, one - s * (one - frac))], -1)
    bgr = np.take_along_axis(tab, _SECTORS[np.clip(sector, 0, 5)], -1) * f(255)
    scalar = np.rint(np.where((s == 0)[..., None], v[..., None] * f(255), bgr))
    bgr = np.where(vector[..., None], np.trunc(bgr), scalar)
    return np.clip(bgr, 0, 255).astype(np.uint8)


def _adjust_channel(img: np.ndarray, channel: int, alpha: float, beta: float) -> np.ndarray:
    hsv = bgr_to_hsv(img)
    hsv[..., channel] = convert_scale(hsv[..., channel], alpha, beta)
    return hsv_to_bgr(hsv)


def distort_image(img: np.ndarray, p: Any, stream: rng.CaffeRNG, c_rand: crand.GlibcRandom) -> np.ndarray:
    """ApplyDistort: with one draw > 0.5 the order brightness, contrast, saturation, hue, else
    brightness, saturation, hue, contrast; then the channel reorder. Each step draws whether to
    act (probability ``*_prob``) and, when it acts, its random amount."""

    def chance(prob: float) -> bool:
        return bool(stream.uniform(1, 0, 1)[0] < F32(prob))

    def brightness(x: np.ndarray) -> np.ndarray:
        if chance(p.brightness_prob):
            delta = float(stream.uniform(1, -p.brightness_delta, p.brightness_delta)[0])
            return convert_scale(x, 1, delta) if abs(delta) > 0 else x
        return x

    def contrast(x: np.ndarray) -> np.ndarray:
        if chance(p.contrast_prob):
            delta = float(stream.uniform(1, p.contrast_lower, p.contrast_upper)[0])
            return convert_scale(x, delta, 0) if abs(delta - 1) > 1e-3 else x
        return x

    def saturation(x: np.ndarray) -> np.ndarray:
        if chance(p.saturation_prob):
            delta = float(stream.uniform(1, p.saturation_lower, p.saturation_upper)[0])
            return _adjust_channel(x, 1, delta, 0)
        return x

    def hue(x: np.ndarray) -> np.ndarray:
        if chance(p.hue_prob):
            delta = float(stream.uniform(1, -p.hue_delta, p.hue_delta)[0])
            return _adjust_channel(x, 0, 1, delta) if abs(delta) > 0 else x
        return x

    if img.shape[2] != 3 and (p.saturation_prob or p.hue_prob or p.random_order_prob):
        raise DataError(
            f"distort_param's saturation, hue and channel order need 3-channel images, got "
            f"{img.shape[2]} channels"
        )
    steps = (
        [brightness, contrast, saturation, hue]
        if stream.uniform(1, 0, 1)[0] > F32(0.5)
        else [brightness, saturation, hue, contrast]
    )
    for step in steps:
        img = step(img)
    if chance(p.random_order_prob):
        channels = [img[..., i] for i in range(3)]
        crand.random_shuffle(channels, c_rand)
        img = np.ascontiguousarray(np.stack(channels, -1))
    return img


INTERP_NAMES = {1: "LINEAR", 2: "AREA", 3: "NEAREST", 4: "CUBIC", 5: "LANCZOS4"}


def resize_to(img: np.ndarray, height: int, width: int, interp: int) -> np.ndarray:
    """``cv::resize`` of an 8-bit HWC image with ResizeParameter's interp_mode: LINEAR and NEAREST
    as OpenCV computes them; AREA, CUBIC and LANCZOS4 with OpenCV's weights in float32 (OpenCV's
    fixed-point loops can differ by a grey level)."""
    if interp == 1:
        return image.resize_linear(img, height, width)
    if interp == 3:  # OpenCV's INTER_NEAREST: floor(dst · scale)
        rows = np.minimum(
            np.floor(np.arange(height) * (img.shape[0] / height)).astype(np.int64), img.shape[0] - 1
        )
        cols = np.minimum(
            np.floor(np.arange(width) * (img.shape[1] / width)).astype(np.int64), img.shape[1] - 1
        )
        return np.ascontiguousarray(img[rows][:, cols])
    if interp not in INTERP_NAMES:
        raise DataError(f"resize_param.interp_mode {interp} is not one of {', '.join(INTERP_NAMES.values())}")
    shrink = img.shape[0] >= height and img.shape[1] >= width
    wy = _weights(img.shape[0], height, interp, shrink)
    wx = _weights(img.shape[1], width, interp, shrink)
    out = np.einsum("ys,sxc->yxc", wy, np.einsum("xt,stc->sxc", wx, img.astype(np.float32)))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _weights(src: int, dst: int, interp: int, shrink: bool) -> np.ndarray:
    """The (dst, src) matrix of one axis' interpolation weights (clamped borders)."""
    scale = src / dst
    out = np.zeros((dst, src), dtype=np.float32)
    if interp == 2 and shrink:  # each output pixel: the mean of the source span it covers
        for d in range(dst):
            start, end = d * scale, (d + 1) * scale
            for s_ in range(int(np.floor(start)), min(int(np.ceil(end)), src)):
                out[d, s_] = (min(end, s_ + 1) - max(start, s_)) / scale
        return out
    for d in range(dst):
        if interp == 2:  # INTER_AREA when enlarging: OpenCV's own two-tap rule
            sx = int(np.floor(d * scale))
            fx = (d + 1) - (sx + 1) / scale
            fx = 0.0 if fx <= 0 else fx - np.floor(fx)
            taps = {sx: 1 - fx, sx + 1: fx}
        else:
            fx = (d + 0.5) * scale - 0.5
            sx = int(np.floor(fx))
            fx -= sx
            taps = (
                dict(zip(range(sx - 1, sx + 3), _cubic(fx)))
                if interp == 4
                else dict(zip(range(sx - 3, sx + 5), _lanczos4(fx)))
            )
        for index, weight in taps.items():
            out[d, min(max(index, 0), src - 1)] += weight
    return out


def _cubic(x: float) -> list[float]:
    a = -0.75
    w0 = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
    w1 = ((a + 2) * x - (a + 3)) * x * x + 1
    w2 = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
    return [w0, w1, w2, 1 - w0 - w1 - w2]


def _lanczos4(x: float) -> list[float]:
    if x < np.finfo(np.float32).eps:
        return [0, 0, 0, 1, 0, 0, 0, 0]
    taps = [float(np.sinc(t) * np.sinc(t / 4)) for t in (x + 3 - i for i in range(8))]
    total = sum(taps)
    return [t / total for t in taps]


def apply_resize(img: np.ndarray, p: Any, stream: rng.CaffeRNG) -> np.ndarray:
    """ApplyResize: WARP to height×width, FIT_SMALL_SIZE (aspect kept, the smaller side fits),
    FIT_LARGE_SIZE_AND_PAD (aspect kept, then padded: CONSTANT pad_value, MIRRORED, or
    REPEAT_NEAREST). With several interp_mode one is picked at random (one uniform draw)."""
    interp = 1
    if p.interp_mode:
        modes = list(p.interp_mode)
        cumulative = np.cumsum(np.full(len(modes), F32(1) / F32(len(modes)), dtype=np.float32))
        value = stream.uniform(1, 0, float(cumulative[-1]))[0]
        interp = modes[min(int(np.searchsorted(cumulative, value, side="left")), len(modes) - 1)]
    h, w = img.shape[:2]
    aspect = F32(w) / F32(h)
    new_aspect = F32(p.width) / F32(p.height)
    if p.resize_mode == p.WARP:
        return resize_to(img, p.height, p.width, interp)
    if p.resize_mode == p.FIT_SMALL_SIZE:
        if aspect < new_aspect:
            return resize_to(img, math.floor(F32(p.width) / aspect), p.width, interp)
        return resize_to(img, p.height, math.floor(aspect * F32(p.height)), interp)
    if aspect > new_aspect:
        resized = resize_to(img, math.floor(F32(p.width) / aspect), p.width, interp)
        top = (p.height - resized.shape[0]) // 2
        pads = ((top, p.height - resized.shape[0] - top), (0, 0), (0, 0))
    else:
        resized = resize_to(img, p.height, math.floor(aspect * F32(p.height)), interp)
        left = (p.width - resized.shape[1]) // 2
        pads = ((0, 0), (left, p.width - resized.shape[1] - left), (0, 0))
    if p.pad_mode == p.MIRRORED:
        return np.pad(resized, pads, mode="reflect")
    if p.pad_mode == p.REPEAT_NEAREST:
        return np.pad(resized, pads, mode="edge")
    values = list(p.pad_value) or [0.0]
    if len(values) not in (1, img.shape[2]):
        raise DataError(
            f"resize_param: give 1 pad_value or one per channel ({img.shape[2]}), got {len(values)}"
        )
    fill = np.clip(np.rint(np.broadcast_to(np.asarray(values, dtype=np.float32), (img.shape[2],))), 0, 255)
    out = np.empty((p.height, p.width, img.shape[2]), dtype=np.uint8)
    out[:] = fill.astype(np.uint8)
    out[pads[0][0] : pads[0][0] + resized.shape[0], pads[1][0] : pads[1][0] + resized.shape[1]] = resized
    return out


def resized_size(p: Any, h: int, w: int) -> tuple[int, int]:
    """InferNewSize: the (height, width) a resize_param gives an h×w image."""
    if p.resize_mode != p.FIT_SMALL_SIZE:
        return p.height, p.width
    aspect = F32(w) / F32(h)
    if aspect < F32(p.width) / F32(p.height):
        return int(F32(p.width) / aspect), p.width
    return p.height, int(aspect * F32(p.height))
