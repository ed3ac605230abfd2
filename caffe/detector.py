"""``caffe.Detector``: classify windows of images (R-CNN style), optionally with context."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from caffe import io
from caffe.pycaffe import Net
from recaffe.net import TEST


class Detector(Net):
    """Warp windows of images to the net's input and classify them in batches.

    ``mean``, ``input_scale``, ``raw_scale`` and ``channel_swap`` configure ``self.transformer``;
    ``context_pad`` keeps a border of that many input pixels of context around each window
    (filled with the mean where the window leaves the image), as in R-CNN.
    """

    def __init__(self, model_file: str, pretrained_file: str, mean: np.ndarray | None = None,
                 input_scale: float | None = None, raw_scale: float | None = None,
                 channel_swap: Sequence[int] | None = None, context_pad: int | None = None) -> None:
        super().__init__(model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = io.image_transformer(self.blobs[in_].data.shape, in_, mean, input_scale,
                                                raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows: Iterable[tuple[str, Sequence[Any]]]) -> list[dict[str, Any]]:
        """Classify every window (ymin, xmin, ymax, xmax) of every image file.

        Returns one ``{'window', 'prediction', 'filename'}`` dict per window, in order.
        """
        images_windows = list(images_windows)
        crops: list[np.ndarray] = []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            crops.extend(self.crop(image, window) for window in windows)
        in_ = self.inputs[0]
        shape = (len(crops), crops[0].shape[2]) + self.blobs[in_].data.shape[2:]
        caffe_in = np.zeros(shape, dtype=np.float32)
        for i, crop in enumerate(crops):
            caffe_in[i] = self.transformer.preprocess(in_, crop)
        batch: dict[str, Any] = {in_: caffe_in}  # Any: so mypy does not match it to ``blobs``
        predictions = iter(self.forward_all(**batch)[self.outputs[0]])
        return [{"window": window, "prediction": next(predictions), "filename": filename}
                for filename, windows in images_windows for window in windows]

    def detect_selective_search(self, image_fnames: Sequence[str]) -> list[dict[str, Any]]:
        """Detect over Selective Search proposals (needs the external, MATLAB-based
        selective_search_ijcv_with_python package)."""
        try:
            import selective_search_ijcv_with_python as selective_search  # type: ignore[import-not-found]
        except ImportError as e:
            raise ImportError(
                "detect_selective_search needs the selective_search_ijcv_with_python package "
                "(https://github.com/sergeyk/selective_search_ijcv_with_python) and MATLAB") from e
        image_fnames = [os.path.abspath(f) for f in image_fnames]
        windows_list = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(image_fnames, windows_list))

    def crop(self, im: np.ndarray, window: Sequence[int]) -> np.ndarray:
        """The window (ymin, xmin, ymax, xmax) of ``im``, with ``context_pad`` context if set."""
        if not self.context_pad:
            return im[window[0]:window[2], window[1]:window[3]]
        box = np.array(window, dtype=np.float64)
        crop_size = self.blobs[self.inputs[0]].width  # square inputs assumed
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h, half_w = (box[2] - box[0] + 1) / 2.0, (box[3] - box[1] + 1) / 2.0
        centre = (box[0] + half_h, box[1] + half_w)
        box = np.round(np.tile(centre, 2) + scale * np.array((-half_h, -half_w, half_h, half_w)))
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        pad_y = round(max(0, -box[0]) * scale_h)  # how far the box leaves the image
        pad_x = round(max(0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        if clip_h <= 0 or clip_w <= 0:
            raise ValueError(f"window {list(window)} lies outside the {im_h}x{im_w} image")
        crop_h = min(round(clip_h * scale_h), crop_size - pad_y)
        crop_w = min(round(clip_w * scale_w), crop_size - pad_x)
        top, left, bottom, right = (int(v) for v in box)
        context = io.resize_image(im[top:bottom, left:right], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return crop

    def configure_crop(self, context_pad: int | None) -> None:
        """Set the crop size (the input's H, W, K) and the context; with context, the mean in
        image space (before transpose, channel swap and raw scale) fills the padding."""
        in_ = self.inputs[0]
        to_image = np.argsort(self.transformer.transpose[in_])
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[to_image]
        self.context_pad = context_pad
        if not self.context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = mean.copy().transpose(to_image)
        channel_order = self.transformer.channel_swap.get(in_)
        if channel_order is not None:
            crop_mean = crop_mean[:, :, [list(channel_order).index(i) for i in range(crop_mean.shape[2])]]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean = crop_mean / raw_scale
        self.crop_mean = crop_mean
