"""Regenerate ``caffe_pb2.py`` from ``caffe.proto``: ``python -m recaffe.proto.generate``.

Needs the ``grpcio-tools`` package (the ``dev`` extra), which bundles ``protoc``.
"""

from __future__ import annotations

import pathlib
import sys


def main() -> int:
    from grpc_tools import protoc  # imported here: a dev-only dependency

    here = pathlib.Path(__file__).resolve().parent
    return protoc.main(["protoc", f"-I{here}", f"--python_out={here}", str(here / "caffe.proto")])


if __name__ == "__main__":
    sys.exit(main())
