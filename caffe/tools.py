"""``recaffe classify`` and ``recaffe draw_net``: pycaffe's python/classify.py and draw_net.py.

They run on pycaffe, so they live here and join the ``recaffe``/``caffe`` command through the
``recaffe.cli`` entry-point group (pyproject.toml): recaffe's CLI never imports ``caffe``.

The arguments are those of BVLC's scripts. Unlike classify.py, no ImageNet mean ships with
recaffe: ``--mean_file`` is optional (no mean subtraction without it), and the model defaults
are the reference CaffeNet paths of a Caffe checkout, relative to the current directory.
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from typing import Any

import numpy as np

from recaffe.io import atomic

CAFFENET = "models/bvlc_reference_caffenet"


def register(subparsers: Any) -> None:
    _register_classify(subparsers)
    _register_draw_net(subparsers)


# ================================================================ classify
def _register_classify(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "classify", help="classify images (or an .npy of images) with a trained net (python/classify.py)",
        description="Classify an image, a folder of images or an .npy array of images, averaging "
                    "over ten crops unless --center_only; the class probabilities go to an .npy file.")
    p.add_argument("input_file", help="Input image, directory, or npy.")
    p.add_argument("output_file", help="Output npy filename.")
    p.add_argument("--model_def", default=f"{CAFFENET}/deploy.prototxt", help="Model definition file.")
    p.add_argument("--pretrained_model", default=f"{CAFFENET}/bvlc_reference_caffenet.caffemodel",
                   help="Trained model weights file.")
    p.add_argument("--gpu", action="store_true", help="Switch for gpu computation.")
    p.add_argument("--center_only", action="store_true",
                   help="Predict from the center crop alone instead of averaging across crops (default).")
    p.add_argument("--images_dim", default="256,256",
                   help="Canonical 'height,width' dimensions of input images.")
    p.add_argument("--mean_file", default="",
                   help="Data set image mean of [Channels x Height x Width] dimensions (numpy array). "
                        "Optional: recaffe ships no ImageNet mean, so no mean is subtracted unless one "
                        "is given (pycaffe defaulted to its bundled ilsvrc_2012_mean.npy).")
    p.add_argument("--input_scale", type=float,
                   help="Multiply input features by this scale to finish preprocessing.")
    p.add_argument("--raw_scale", type=float, default=255.0,
                   help="Multiply raw input by this scale before preprocessing.")
    p.add_argument("--channel_swap", default="2,1,0",
                   help="Order to permute input channels. The default converts RGB -> BGR since BGR is the "
                        "Caffe default by way of OpenCV.")
    p.add_argument("--ext", default="jpg",
                   help="Image file extension to take as input when a directory is given as the input file.")
    p.set_defaults(run=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    import caffe

    image_dims = [int(s) for s in args.images_dim.split(",")]
    mean = np.load(args.mean_file) if args.mean_file else None
    channel_swap = [int(s) for s in args.channel_swap.split(",")] if args.channel_swap else None
    if args.gpu:
        caffe.set_mode_gpu()
        print("GPU mode")
    else:
        caffe.set_mode_cpu()
        print("CPU mode")
    classifier = caffe.Classifier(args.model_def, args.pretrained_model, image_dims=image_dims, mean=mean,
                                  input_scale=args.input_scale, raw_scale=args.raw_scale,
                                  channel_swap=channel_swap)
    inputs = _load_inputs(os.path.expanduser(args.input_file), args.ext)
    print(f"Classifying {len(inputs)} inputs.")
    start = time.time()
    predictions = classifier.predict(inputs, not args.center_only)
    print(f"Done in {time.time() - start:.2f} s.")
    print(f"Saving results into {args.output_file}")
    output = args.output_file if args.output_file.endswith(".npy") else args.output_file + ".npy"  # np.save
    with atomic.replace(output, "predictions file") as temp, open(temp, "wb") as f:
        np.save(f, predictions)
    return 0


def _load_inputs(path: str, ext: str) -> Any:
    from caffe import io

    if path.endswith("npy"):
        print(f"Loading file: {path}")
        return np.load(path)
    if os.path.isdir(path):
        print(f"Loading folder: {path}")
        return [io.load_image(f) for f in sorted(glob.glob(os.path.join(path, f"*.{ext}")))]
    print(f"Loading file: {path}")
    return [io.load_image(path)]


# ================================================================ draw_net
def _register_draw_net(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "draw_net", help="draw a net's graph to an image (python/draw_net.py; needs pydot and Graphviz)",
        description="Draw a graph of the net architecture.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("input_net_proto_file", help="Input network prototxt file")
    p.add_argument("output_image_file", help="Output image file (its extension picks the format)")
    p.add_argument("--rankdir", default="LR",
                   help="One of TB (top-bottom, i.e., vertical), RL (right-left, i.e., horizontal), or "
                        "another valid dot option; see http://www.graphviz.org/doc/info/attrs.html#k:rankdir")
    p.add_argument("--phase", default="ALL",
                   help="Which network phase to draw: can be TRAIN, TEST, or ALL. If ALL, then all layers "
                        "are drawn regardless of phase.")
    p.add_argument("--display_lrm", action="store_true",
                   help="Use this flag to visualize the learning rate multiplier, when non-zero, for the "
                        "learning layers (Convolution, Deconvolution, InnerProduct).")
    p.set_defaults(run=run_draw_net)


def run_draw_net(args: argparse.Namespace) -> int:
    from caffe import draw
    from recaffe.io import prototxt
    from recaffe.proto import caffe_pb2

    phases = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST, "ALL": None}
    if args.phase not in phases:
        raise SystemExit(f"Unknown phase: {args.phase} (TRAIN, TEST or ALL)")
    net = prototxt.read_text(args.input_net_proto_file, caffe_pb2.NetParameter())
    print(f"Drawing net to {args.output_image_file}")
    draw.draw_net_to_file(net, args.output_image_file, args.rankdir, phases[args.phase], args.display_lrm)
    return 0
