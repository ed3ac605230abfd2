"""BVLC Caffe's own log tools, run on our logs: copied from a Caffe checkout into a temporary folder
and converted mechanically to Python 3 (their only Python 2 construct is the print statement).

The scripts come from ``$RECAFFE_BVLC_CAFFE`` (a Caffe source tree, or the git directory of a
Caffe clone); the tests that use them are skipped where there is none.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

DEFAULT_CAFFE = "/work/.mirror/BVLC+caffe/repo"
SCRIPTS = ("parse_log.py", "extract_seconds.py")
_PRINT = re.compile(r"^(\s*)print (.+)$", re.MULTILINE)


def _read(root: pathlib.Path, relative: str) -> str | None:
    if (root / relative).is_file():
        return (root / relative).read_text()
    if (root / "HEAD").is_file():  # a bare git directory
        done = subprocess.run(["git", "-C", str(root), "show", f"HEAD:{relative}"], capture_output=True,
                              text=True, check=False)
        return done.stdout if done.returncode == 0 else None
    return None


def to_python3(source: str) -> str:
    """``print x`` statements become ``print(x)`` calls."""
    return _PRINT.sub(lambda m: f"{m.group(1)}print({m.group(2)})", source)


def caffe_file(relative: str) -> str:
    """The text of a file of BVLC Caffe's tree; skips the calling test where there is none."""
    source = _read(pathlib.Path(os.environ.get("RECAFFE_BVLC_CAFFE", DEFAULT_CAFFE)), relative)
    if source is None:
        pytest.skip(f"BVLC Caffe's {relative} is not available (set RECAFFE_BVLC_CAFFE)")
    return source


def install_scripts(folder: pathlib.Path) -> pathlib.Path:
    """Write Python 3 copies of BVLC's parse_log.py and extract_seconds.py into ``folder``."""
    for name in SCRIPTS:
        (folder / name).write_text(to_python3(caffe_file(f"tools/extra/{name}")))
    return folder


def run_script(folder: pathlib.Path, name: str, *args: str | os.PathLike[str]) -> str:
    done = subprocess.run([sys.executable, str(folder / name), *map(str, args)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout
