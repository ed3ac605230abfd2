"""``import caffe`` from the parent folder of a checkout named ``recaffe``: that folder must not
hide the installed package (``make install`` installs the checkout in setuptools' compat editable
mode), and where it does, the error says what happened."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

# where Python finds both packages, without running them (importing torch would take seconds)
FIND_BOTH = "import importlib.util as u; print(u.find_spec('recaffe').origin, u.find_spec('caffe').origin)"


def run_python(code: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_folder_named_recaffe_in_the_current_directory_does_not_hide_the_package(tmp_path) -> None:
    (tmp_path / "recaffe" / "tests").mkdir(parents=True)  # a checkout, seen from its parent
    done = run_python(FIND_BOTH, tmp_path)
    assert done.returncode == 0, done.stderr
    import caffe
    import recaffe

    assert done.stdout.split() == [recaffe.__file__, caffe.__file__]  # the packages, not the folder


def test_when_a_folder_hides_recaffe_the_error_says_so(tmp_path) -> None:
    shadow = "import sys, types; m = types.ModuleType('recaffe'); m.__path__ = ['/x/recaffe']; " \
             "sys.modules['recaffe'] = m; "
    done = run_python(shadow + "import caffe", tmp_path)
    assert done.returncode != 0
    assert "'import recaffe' found the folder /x/recaffe instead of the installed package" in done.stderr
