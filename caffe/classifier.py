"""``caffe.Classifier``: a TEST-phase Net that classifies (H, W, K) images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from caffe import io
from caffe.pycaffe import Net
from recaffe.net import TEST


class Classifier(Net):
    """Classify images by resizing to ``image_dims``, then cropping to the net's input size.

    ``image_dims`` defaults to the input's (H, W) (whole-image crops); ``mean``,
    ``input_scale``, ``raw_scale`` and ``channel_swap`` configure ``self.transformer`` (a
    ``caffe.io.Transformer`` that also transposes HxWxK to KxHxW).
    """

    def __init__(self, model_file: str, pretrained_file: str, image_dims: Sequence[int] | None = None,
                 mean: np.ndarray | None = None, input_scale: float | None = None,
                 raw_scale: float | None = None, channel_swap: Sequence[int] | None = None) -> None:
        super().__init__(model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = io.image_transformer(self.blobs[in_].data.shape, in_, mean, input_scale,
                                                raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims = self.crop_dims if image_dims is None or not len(image_dims) else image_dims

    def predict(self, inputs: Sequence[np.ndarray], oversample: bool = True) -> np.ndarray:
        """Class probabilities (N, classes): the mean over ten crops (corners, centre and their
        mirrors) when ``oversample``, else the centre crop's."""
        resized = np.zeros((len(inputs), self.image_dims[0], self.image_dims[1], inputs[0].shape[2]),
                           dtype=np.float32)
        for i, image in enumerate(inputs):
            resized[i] = io.resize_image(image, self.image_dims)
        if oversample:
            crops = io.oversample(resized, self.crop_dims)
        else:
            centre = np.array(self.image_dims) / 2.0
            box = np.concatenate([centre - self.crop_dims / 2.0, centre + self.crop_dims / 2.0]).astype(int)
            crops = resized[:, box[0]:box[2], box[1]:box[3], :]
        in_ = self.inputs[0]
        caffe_in = np.zeros(np.array(crops.shape)[[0, 3, 1, 2]], dtype=np.float32)
        for i, crop in enumerate(crops):
            caffe_in[i] = self.transformer.preprocess(in_, crop)
        batch: dict[str, Any] = {in_: caffe_in}  # Any: so mypy does not match it to ``blobs``
        predictions = self.forward_all(**batch)[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
