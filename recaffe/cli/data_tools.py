"""Dataset subcommands: convert_imageset, convert_annoset (the SSD fork's), compute_image_mean,
extract_features, convert_mnist, convert_cifar10 and convert_digits, with Caffe's argument order
and flag names."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def register(subparsers: argparse._SubParsersAction) -> None:
    p = _add(subparsers, "convert_imageset", _convert_imageset,
             "Convert a set of images to the leveldb/lmdb format used as input for Caffe.",
             "convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME")
    p.add_argument("root_folder", help="prefix of every path in LISTFILE (keep its trailing slash)")
    p.add_argument("list_file", help="lines of '<path> <label>'")
    p.add_argument("db_name", help="the database to create")
    p.add_argument("--gray", action="store_true", help="treat images as grayscale ones")
    p.add_argument("--shuffle", action="store_true",
                   help="randomly shuffle the order of images and their labels")
    p.add_argument("--backend", default="lmdb", help="the backend {lmdb, leveldb} for storing the result")
    p.add_argument("--resize_width", type=int, default=0, help="width images are resized to")
    p.add_argument("--resize_height", type=int, default=0, help="height images are resized to")
    p.add_argument("--check_size", action="store_true", help="check that all the datum have the same size")
    p.add_argument("--encoded", action="store_true", help="save the encoded image in the datum")
    p.add_argument("--encode_type", default="", help="what type to encode the image as ('png', 'jpg', ...)")

    p = _add(subparsers, "convert_annoset", _convert_annoset,
             "Convert images and their box annotations to the leveldb/lmdb of AnnotatedDatum that SSD's "
             "AnnotatedData layer reads (the SSD fork's convert_annoset / create_annoset.py).",
             "convert_annoset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME")
    p.add_argument("root_folder", help="prefix of every path in LISTFILE (keep its trailing slash)")
    p.add_argument("list_file", help="lines of '<image path> <label file path>'")
    p.add_argument("db_name", help="the database to create")
    p.add_argument("--anno_type", default="detection", choices=["detection"], help="the annotation type")
    p.add_argument("--label_type", default="xml", choices=["xml", "json", "txt"],
                   help="xml: PASCAL VOC files; json: the SSD fork's COCO files; txt: 'label xmin ymin "
                        "xmax ymax' lines in pixels")
    p.add_argument("--label_map_file", default="", help="LabelMap prototxt mapping xml/json names to labels")
    p.add_argument("--gray", action="store_true", help="treat images as grayscale ones")
    p.add_argument("--shuffle", action="store_true", help="randomly shuffle the order of images")
    p.add_argument("--backend", default="lmdb", help="the backend {lmdb, leveldb} for storing the result")
    p.add_argument("--resize_width", type=int, default=0, help="width images are resized to")
    p.add_argument("--resize_height", type=int, default=0, help="height images are resized to")
    p.add_argument("--encoded", action="store_true", help="save the encoded image in the datum")
    p.add_argument("--encode_type", default="", help="what type to encode the image as ('png', 'jpg', ...)")

    p = _add(subparsers, "compute_image_mean", _compute_image_mean,
             "Compute the mean image of a set of images given by a leveldb/lmdb.",
             "compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]")
    p.add_argument("input_db")
    p.add_argument("output_file", nargs="?", default=None, help="where to write the mean (.binaryproto)")
    p.add_argument("--backend", default="lmdb", help="the backend {leveldb, lmdb} containing the images")

    p = _add(subparsers, "extract_features", _extract_features,
             "Extract features of the input data produced by a trained net.",
             "extract_features pretrained_net_param feature_extraction_proto_file "
             "blob1[,blob2,...] db1[,db2,...] num_mini_batches db_type [CPU|GPU] [DEVICE_ID=0]")
    p.add_argument("pretrained_net_param")
    p.add_argument("feature_extraction_proto_file")
    p.add_argument("blob_names", help="comma-separated blob names")
    p.add_argument("dataset_names", help="comma-separated databases to create, one per blob")
    p.add_argument("num_mini_batches", type=int)
    p.add_argument("db_type", help="lmdb or leveldb")
    p.add_argument("mode", nargs="?", default="CPU", choices=["CPU", "GPU"])
    p.add_argument("device_id", nargs="?", type=int, default=0)

    p = _add(subparsers, "convert_mnist", _convert_mnist,
             "Convert the MNIST dataset to the lmdb/leveldb format used by Caffe to load data.",
             "convert_mnist [FLAGS] input_image_file input_label_file output_db_file")
    p.add_argument("image_file")
    p.add_argument("label_file")
    p.add_argument("db_path")
    p.add_argument("--backend", default="lmdb", help="the backend for storing the result")

    p = _add(subparsers, "convert_cifar10", _convert_cifar10,
             "Convert the CIFAR-10 binary batches to cifar10_train_<db_type> and cifar10_test_<db_type>.",
             "convert_cifar10 input_folder output_folder db_type")
    p.add_argument("input_folder", help="folder with data_batch_1..5.bin and test_batch.bin")
    p.add_argument("output_folder")
    p.add_argument("db_type", nargs="?", default="lmdb")

    p = _add(subparsers, "convert_digits", _convert_digits,
             "Write scikit-learn's bundled handwritten digits (no download) as 28x28 MNIST-like "
             "digits_train_<backend> and digits_test_<backend> databases.",
             "convert_digits OUT_DIR [--backend lmdb]")
    p.add_argument("out_dir")
    p.add_argument("--backend", default="lmdb")


def _add(subparsers: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], None],
         description: str, usage: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help=description.split(".")[0], description=description,
                                   usage=f"recaffe {usage}")
    parser.set_defaults(run=lambda args: _run(run, args))
    return parser


def _run(run: Callable[[argparse.Namespace], None], args: argparse.Namespace) -> int:
    run(args)  # errors (DataError, ValueError, OSError) end as a FATAL line in recaffe.cli.main
    return 0


def _convert_imageset(args: argparse.Namespace) -> None:
    from recaffe.tools.convert_imageset import convert_imageset

    convert_imageset(args.root_folder, args.list_file, args.db_name, gray=args.gray, shuffle=args.shuffle,
                     backend=args.backend, resize_width=args.resize_width, resize_height=args.resize_height,
                     check_size=args.check_size, encoded=args.encoded, encode_type=args.encode_type)


def _convert_annoset(args: argparse.Namespace) -> None:
    from recaffe.forks.ssd.annoset import create_annoset

    create_annoset(args.root_folder, args.list_file, args.db_name, label_type=args.label_type,
                   label_map_file=args.label_map_file, backend=args.backend,
                   encoded=args.encoded or bool(args.encode_type), encode_type=args.encode_type,
                   resize_width=args.resize_width, resize_height=args.resize_height, gray=args.gray,
                   shuffle=args.shuffle)


def _compute_image_mean(args: argparse.Namespace) -> None:
    from recaffe.tools.compute_image_mean import compute_image_mean

    compute_image_mean(args.input_db, args.output_file, args.backend)


def _extract_features(args: argparse.Namespace) -> None:
    from recaffe.tools.extract_features import extract_features

    extract_features(args.pretrained_net_param, args.feature_extraction_proto_file,
                     args.blob_names.split(","), args.dataset_names.split(","), args.num_mini_batches,
                     args.db_type, args.mode, args.device_id)


def _convert_mnist(args: argparse.Namespace) -> None:
    from recaffe.tools.datasets import convert_mnist

    convert_mnist(args.image_file, args.label_file, args.db_path, args.backend)


def _convert_cifar10(args: argparse.Namespace) -> None:
    from recaffe.tools.datasets import convert_cifar10

    convert_cifar10(args.input_folder, args.output_folder, args.db_type)


def _convert_digits(args: argparse.Namespace) -> None:
    from recaffe.tools.datasets import convert_digits

    convert_digits(args.out_dir, args.backend)
