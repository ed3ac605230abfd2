#!/usr/bin/env bash
# Run BVLC Caffe's own pycaffe tests (python/caffe/test) unchanged against this repository's
# `caffe` package. The tests, examples/ and models/ (test_draw walks them) are exported from a
# git checkout of BVLC Caffe into a temporary directory, so BVLC's own python/caffe package is
# never importable: only python/caffe/test/ is extracted, and this repository comes first on
# PYTHONPATH.
#
# usage: scripts/run_bvlc_pycaffe_tests.sh [BVLC_GIT_DIR [REV]] [-- PYTEST_ARGS...]
#   BVLC_GIT_DIR  a clone (or bare mirror) of github.com/BVLC/caffe
#                 (default: /work/.mirror/BVLC+caffe/repo)
#   REV           the revision to take the tests from (default: HEAD)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bvlc_git=/work/.mirror/BVLC+caffe/repo
rev=HEAD
if [[ $# -gt 0 && $1 != -- ]]; then bvlc_git=$1; shift; fi
if [[ $# -gt 0 && $1 != -- ]]; then rev=$1; shift; fi
if [[ $# -gt 0 && $1 == -- ]]; then shift; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$bvlc_git" archive "$rev" python/caffe/test examples models | tar -x -C "$work"
if [[ -e $work/python/caffe/__init__.py ]]; then
    echo "BVLC's caffe package was extracted; refusing to run" >&2
    exit 2
fi

cd "$work/python/caffe/test"   # test_draw finds examples/ and models/ three levels up
export PYTHONPATH="$repo_root${PYTHONPATH:+:$PYTHONPATH}"
python - "$repo_root" <<'PY'
import os, sys
import caffe
where = os.path.dirname(os.path.abspath(caffe.__file__))
if where != os.path.join(sys.argv[1], "caffe"):
    sys.exit(f"`import caffe` found {where}, not this repository's package")
print(f"caffe package: {where}")
PY
python -m pytest -p no:cacheprovider -q -rs -c /dev/null --rootdir . test_*.py "$@"
