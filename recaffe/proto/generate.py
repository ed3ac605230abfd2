"""Regenerate ``caffe_pb2.py`` and its type stub ``caffe_pb2.pyi`` from ``caffe.proto``:
``python -m recaffe.proto.generate``.

Needs the ``dev`` extra: ``grpcio-tools`` (it bundles ``protoc``) and ``mypy-protobuf`` (the
``protoc-gen-mypy`` plugin that writes the stub mypy checks the tree against).
"""

from __future__ import annotations

import pathlib
import shutil
import sys


def main() -> int:
    from grpc_tools import protoc  # imported here: a dev-only dependency

    here = pathlib.Path(__file__).resolve().parent
    plugin = shutil.which("protoc-gen-mypy", path=str(pathlib.Path(sys.executable).parent)) or shutil.which(
        "protoc-gen-mypy")
    if plugin is None:
        print("protoc-gen-mypy not found: pip install mypy-protobuf (the dev extra)", file=sys.stderr)
        return 1
    return protoc.main(["protoc", f"-I{here}", f"--python_out={here}", f"--plugin=protoc-gen-mypy={plugin}",
                        f"--mypy_out={here}", str(here / "caffe.proto")])


if __name__ == "__main__":
    sys.exit(main())
