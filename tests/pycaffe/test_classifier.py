"""caffe.Classifier, caffe.Detector, and the classify / draw_net subcommands, on a small
InnerProduct + Softmax deploy net."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

import caffe
from caffe import io
from recaffe.cli import main as cli

DEPLOY = """
name: "small"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 4 dim: 3 dim: 6 dim: 6 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""
MEAN = np.array([100.0, 110.0, 120.0])


@pytest.fixture
def model(write_net, tmp_path) -> tuple[str, str]:
    path = write_net(DEPLOY)
    caffe.set_random_seed(3)
    weights = str(tmp_path / "small.caffemodel")
    caffe.Net(path, caffe.TEST).save(weights)
    return path, weights


def images(count: int, size: tuple[int, int] = (10, 9)) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    return [rng.uniform(size=(*size, 3)).astype(np.float32) for _ in range(count)]


def probabilities(net: caffe.Net, caffe_in: np.ndarray) -> np.ndarray:
    w, b = net.params["ip"][0].data, net.params["ip"][1].data
    logits = caffe_in.reshape(len(caffe_in), -1) @ w.T + b
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def preprocess(image: np.ndarray) -> np.ndarray:
    return (image.transpose(2, 0, 1)[[2, 1, 0]] * 255.0 - MEAN[:, None, None]).astype(np.float32)


def test_classifier_centre_crop_and_oversampling(model) -> None:
    classifier = caffe.Classifier(*model, image_dims=(8, 8), mean=MEAN, raw_scale=255.0,
                                  channel_swap=(2, 1, 0))
    inputs = images(5)
    centre = classifier.predict(inputs, oversample=False)
    resized = [io.resize_image(im, (8, 8)) for im in inputs]
    want = probabilities(classifier, np.stack([preprocess(im[1:7, 1:7]) for im in resized]))
    assert centre.shape == (5, 5)
    np.testing.assert_allclose(centre, want, rtol=1e-4, atol=1e-6)
    averaged = classifier.predict(inputs)
    crops = io.oversample(resized, (6, 6))
    want = probabilities(classifier, np.stack([preprocess(c) for c in crops])).reshape(5, 10, 5).mean(1)
    np.testing.assert_allclose(averaged, want, rtol=1e-4, atol=1e-6)


def test_classifier_defaults_to_whole_image_crops(model) -> None:
    classifier = caffe.Classifier(*model)
    assert list(classifier.image_dims) == [6, 6]
    inputs = images(2, (6, 6))
    want = probabilities(classifier, np.stack([im.transpose(2, 0, 1) for im in inputs]))
    np.testing.assert_allclose(classifier.predict(inputs, oversample=False), want, rtol=1e-4, atol=1e-6)


def test_detector_windows(model, tmp_path) -> None:
    path = tmp_path / "im.png"
    pixels = (np.random.default_rng(5).uniform(size=(20, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    windows = np.array([[0, 0, 6, 6], [2, 3, 14, 15], [5, 1, 20, 16]])
    detector = caffe.Detector(*model, mean=MEAN, raw_scale=255.0, channel_swap=(2, 1, 0))
    detections = detector.detect_windows([(str(path), windows)])
    assert [d["filename"] for d in detections] == [str(path)] * 3
    image = io.load_image(str(path))
    crops = [io.resize_image(image[w[0]:w[2], w[1]:w[3]], (6, 6)) for w in windows]
    want = probabilities(detector, np.stack([preprocess(c) for c in crops]))
    np.testing.assert_allclose(np.stack([d["prediction"] for d in detections]), want, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(detections[1]["window"], windows[1])
    padded = caffe.Detector(*model, mean=MEAN, raw_scale=255.0, channel_swap=(2, 1, 0), context_pad=1)
    assert list(padded.crop_dims) == [6, 6, 3]
    np.testing.assert_allclose(padded.crop_mean[0, 0], MEAN[::-1] / 255.0)
    crop = padded.crop(image, windows[0])  # the window touches the border: mean fills the context
    assert crop.shape == (6, 6, 3)
    np.testing.assert_allclose(crop[0, 0], MEAN[::-1] / 255.0, rtol=1e-6)
    assert len(padded.detect_windows([(str(path), windows)])) == 3
    with pytest.raises(ImportError, match="selective_search_ijcv_with_python"):
        detector.detect_selective_search([str(path)])


def test_classify_subcommand(model, tmp_path, capsys) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i, im in enumerate(images(3)):
        Image.fromarray((im * 255).astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "out.npy"
    np.save(tmp_path / "mean.npy", np.broadcast_to(MEAN[:, None, None], (3, 8, 8)))
    argv = ["classify", str(folder), str(out), "--model_def", model[0], "--pretrained_model", model[1],
            "--images_dim", "8,8", "--ext", "png", "--mean_file", str(tmp_path / "mean.npy")]
    assert cli.main(argv) == 0
    predictions = np.load(out)
    assert predictions.shape == (3, 5)
    np.testing.assert_allclose(predictions.sum(1), 1.0, rtol=1e-5)
    assert "Classifying 3 inputs." in capsys.readouterr().out
    np.save(tmp_path / "inputs.npy", np.stack(images(2)))
    assert cli.main(["classify", str(tmp_path / "inputs.npy"), str(out), "-model_def", model[0],
                     "-pretrained_model", model[1], "-center_only"]) == 0
    assert np.load(out).shape == (2, 5)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_draw_net_subcommand(model, tmp_path) -> None:
    pytest.importorskip("pydot")
    out = tmp_path / "net.svg"
    assert cli.main(["draw_net", model[0], str(out), "--rankdir", "TB", "--phase", "TEST"]) == 0
    assert b"<svg" in out.read_bytes()
    with pytest.raises(SystemExit):
        cli.main(["draw_net", model[0], str(out), "--phase", "VAL"])
