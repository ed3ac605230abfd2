#!/usr/bin/env bash
# Build a reference CPU-only Caffe (tools + pycaffe) from a (bare) git dir.
# recaffe's copy of ../shared/tools/build-reference-caffe.sh with one addition for old forks:
#   FORK_PATCH=scripts/fork_patches/<fork>.sh  run in the extracted source after the standard patches
#   (part of the stamp, so changing it re-extracts); MAKE_TARGETS (default "lib tools py").
#
# Usage: ../shared/tools/build-reference-caffe.sh SRC_GIT_DIR NAME [REF]
#   SRC_GIT_DIR  git dir of a Caffe repository (bare mirror is fine); never modified
#   NAME         output name -> $HOME/.cache/caffe-ref/NAME/
#   REF          commit/branch to build (default: HEAD; or env CAFFE_REF)
#
# Result: $HOME/.cache/caffe-ref/NAME/{src,venv,env.sh,build.log,BUILD_INFO}
#   source "$HOME/.cache/caffe-ref/NAME/env.sh"   # caffe on PATH, pycaffe on PYTHONPATH
#
# Env knobs: JOBS (default 2), PYTHON (default: python3 on PATH, e.g. pyenv),
#   CLEAN=1 (re-extract source and rebuild from scratch), USE_OPENCV=0 (force no OpenCV),
#   SKIP_APT=1 (do not touch Debian packages), SKIP_VERIFY=1,
#   EXPECT_LAYERS="PriorBox DetectionOutput" (verify fails unless these layer types are registered).
# Tested on Debian 12 (gcc 12, protobuf 3.21, OpenCV 4.6, boost 1.74) with pyenv Python 3.11.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi

SRC_GIT=$1
NAME=$2
REF=${3:-${CAFFE_REF:-HEAD}}
JOBS=${JOBS:-2}
PYTHON=${PYTHON:-python3}
ROOT="$HOME/.cache/caffe-ref/$NAME"
SRC="$ROOT/src"
VENV="$ROOT/venv"
LOG="$ROOT/build.log"
PATCH_VERSION=3  # bump when the patch set below changes (forces re-extract)

log() { echo "[caffe-ref $(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

git --git-dir="$SRC_GIT" rev-parse --verify -q "$REF^{commit}" >/dev/null ||
  die "$SRC_GIT has no commit '$REF'"
COMMIT=$(git --git-dir="$SRC_GIT" rev-parse "$REF^{commit}")
mkdir -p "$ROOT"
T0=$(date +%s)

# ---------------------------------------------------------------- 1. Debian packages
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
PKGS="build-essential pkg-config git
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-regex-dev libboost-python-dev
  libprotobuf-dev protobuf-compiler libgoogle-glog-dev libgflags-dev
  libhdf5-dev liblmdb-dev libleveldb-dev libsnappy-dev libopenblas-dev"
USE_OPENCV=${USE_OPENCV:-1}
missing() {
  local p out=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
  done
  echo "$out"
}
if [ "${SKIP_APT:-0}" != 1 ]; then
  # shellcheck disable=SC2086
  M=$(missing $PKGS)
  if [ -n "$M" ]; then
    log "apt-get install:$M"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $M >/dev/null
  fi
  if [ "$USE_OPENCV" = 1 ] && [ -n "$(missing libopencv-dev)" ]; then
    log "apt-get install: libopencv-dev"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libopencv-dev >/dev/null ||
      { log "libopencv-dev failed to install -> building without OpenCV"; USE_OPENCV=0; }
  fi
fi
if [ "$USE_OPENCV" = 1 ]; then
  if pkg-config --exists opencv4; then OPENCV_PC=opencv4
  elif pkg-config --exists opencv; then OPENCV_PC=opencv
  else log "no OpenCV pkg-config -> building without OpenCV"; USE_OPENCV=0; fi
fi

# ---------------------------------------------------------------- 2. Python venv
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYVER_ND=${PYVER/./}
PY_INC=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
PY_LIBDIR=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
[ -f "$PY_INC/Python.h" ] || die "no Python.h for $PYTHON ($PY_INC); install python3-dev / a pyenv build with headers"

# python protobuf runtime matching the system protoc (protoc 3.21.x <-> protobuf 4.21.x on PyPI)
PROTOC_VER=$(protoc --version | awk '{print $2}')
IFS=. read -r PMAJ PMIN _ <<<"$PROTOC_VER"
if [ "$PMAJ" = 3 ] && [ "$PMIN" -ge 21 ]; then PB_SPEC="protobuf>=4.$PMIN,<4.$((PMIN + 1))"
elif [ "$PMAJ" = 3 ]; then PB_SPEC="protobuf>=3.$PMIN,<3.$((PMIN + 1))"
else PB_SPEC="protobuf>=4.$PMAJ.$PMIN,<4.$PMAJ.$((PMIN + 1))"; fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV ($PYTHON $PYVER)"
  "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
if ! "$VPY" -c 'import numpy, google.protobuf, skimage, lmdb, h5py, six, pydot, yaml' 2>/dev/null; then
  log "pip install pycaffe deps ($PB_SPEC, numpy<2, ...)"
  "$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$VPY" -m pip install -q "numpy<2" "$PB_SPEC" "scikit-image" "scipy" "lmdb" "h5py" "six" "pydot" \
    "pyyaml" "pillow" "packaging" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
fi
NP_INC=$("$VPY" -c 'import numpy; print(numpy.get_include())')

# boost.python library name for this python version
BOOST_PY=""
for cand in "boost_python$PYVER_ND" "boost_python3" "boost_python-py$PYVER_ND" "boost_python"; do
  if echo 'int main(){}' | g++ -x c++ - -l"$cand" -o /dev/null 2>/dev/null; then BOOST_PY=$cand; break; fi
done
[ -n "$BOOST_PY" ] || die "no libboost_python for python $PYVER"

# ---------------------------------------------------------------- 3. source copy + patches
FORK_PATCH=${FORK_PATCH:+$(realpath "$FORK_PATCH")}
FORK_PATCH_SUM=$([ -n "$FORK_PATCH" ] && cat "$(dirname "$FORK_PATCH")"/* 2>/dev/null | md5sum | cut -c1-12 || echo none)
STAMP="$COMMIT patches-v$PATCH_VERSION opencv-$USE_OPENCV fork-patch-$FORK_PATCH_SUM"
if [ "${CLEAN:-0}" = 1 ] || [ ! -f "$SRC/.caffe-ref-stamp" ] || [ "$(cat "$SRC/.caffe-ref-stamp")" != "$STAMP" ]; then
  log "extracting $REF ($COMMIT) from $SRC_GIT"
  rm -rf "$SRC"
  mkdir -p "$SRC"
  git --git-dir="$SRC_GIT" archive --format=tar "$COMMIT" | tar -x -C "$SRC"

  log "patching build copy"
  cd "$SRC"
  FILES=$(grep -rlE 'CV_|SetTotalBytesLimit|highgui_c\.h' --include='*.cpp' --include='*.hpp' \
            --include='*.cu' --include='*.h' src include tools examples python 2>/dev/null || true)
  for f in $FILES; do
    # P1: protobuf >= 3.11 removed the 2-argument CodedInputStream::SetTotalBytesLimit
    sed -i -E 's/SetTotalBytesLimit\(([^,()]+),[^)]*\)/SetTotalBytesLimit(\1)/' "$f"
    # P2: OpenCV 4 removed the C-API constants; use the cv:: names (valid since OpenCV 3)
    sed -i -E '/^[[:space:]]*#define[[:space:]]+CV_[A-Za-z0-9_]+[[:space:]]+cv::/d' "$f"
    sed -i -E 's/#if CV_VERSION_MAJOR == 3/#if CV_VERSION_MAJOR >= 3/' "$f"
    sed -i -E '/#include[[:space:]]*[<"]opencv2\/highgui\/highgui_c\.h[>"]/d' "$f"
    sed -i -E \
      -e 's/\bCV_LOAD_IMAGE_COLOR\b/cv::IMREAD_COLOR/g' \
      -e 's/\bCV_LOAD_IMAGE_GRAYSCALE\b/cv::IMREAD_GRAYSCALE/g' \
      -e 's/\bCV_LOAD_IMAGE_UNCHANGED\b/cv::IMREAD_UNCHANGED/g' \
      -e 's/\bCV_IMWRITE_([A-Z_]+)\b/cv::IMWRITE_\1/g' \
      -e 's/\bCV_THRESH_([A-Z_]+)\b/cv::THRESH_\1/g' \
      -e 's/\bCV_INTER_([A-Z_]+)\b/cv::INTER_\1/g' \
      -e 's/\bCV_CAP_PROP_([A-Z_]+)\b/cv::CAP_PROP_\1/g' \
      -e 's/\bCV_(BGR|RGB|GRAY|HSV|YCrCb|Lab|Luv|XYZ|HLS|BGRA|RGBA)2(BGR|RGB|GRAY|HSV|YCrCb|Lab|Luv|XYZ|HLS|BGRA|RGBA)\b/cv::COLOR_\12\2/g' \
      -e 's/\bCV_FILLED\b/cv::FILLED/g' \
      -e 's/\bCV_AA\b/cv::LINE_AA/g' \
      -e 's/\bCV_FOURCC\(/cv::VideoWriter::fourcc(/g' \
      -e 's/\bCV_RGB\(([^,()]+),([^,()]+),([^,()]+)\)/cv::Scalar(\3,\2,\1)/g' \
      "$f"
  done
  if [ -n "$FORK_PATCH" ]; then
    log "fork patch $FORK_PATCH"
    PATCH_DIR=$(dirname "$FORK_PATCH") bash "$FORK_PATCH"
  fi
  echo "$STAMP" >"$SRC/.caffe-ref-stamp"
fi
cd "$SRC"

# ---------------------------------------------------------------- 4. Makefile.config
incs() { pkg-config --cflags-only-I "$@" | sed 's/-I//g'; }
libdirs() { pkg-config --libs-only-L "$@" | sed 's/-L//g'; }
EXTRA_INC="$(incs hdf5 2>/dev/null || true)"
EXTRA_LIB="$(libdirs hdf5 2>/dev/null || true)"
if [ "$USE_OPENCV" = 1 ]; then
  EXTRA_INC="$EXTRA_INC $(incs "$OPENCV_PC")"
  EXTRA_LIB="$EXTRA_LIB $(libdirs "$OPENCV_PC")"
  OPENCV_MAJOR=$(pkg-config --modversion "$OPENCV_PC" | cut -d. -f1)
else
  OPENCV_MAJOR=0
fi
cat >Makefile.config <<EOF
# generated by ../shared/tools/build-reference-caffe.sh
CPU_ONLY := 1
USE_CUDNN := 0
USE_NCCL := 0
USE_OPENCV := $USE_OPENCV
USE_LEVELDB := 1
USE_LMDB := 1
OPENCV_VERSION := $([ "$OPENCV_MAJOR" -ge 3 ] && echo 3 || echo 2)
BLAS := open
PYTHON_INCLUDE := $PY_INC $NP_INC
PYTHON_LIB := $PY_LIBDIR
PYTHON_LIBRARIES := $BOOST_PY python$PYVER
WITH_PYTHON_LAYER := 1
INCLUDE_DIRS := \$(PYTHON_INCLUDE) $EXTRA_INC
LIBRARY_DIRS := \$(PYTHON_LIB) $EXTRA_LIB
BUILD_DIR := build
DISTRIBUTE_DIR := distribute
TEST_GPUID := 0
Q ?= @
# P3: gcc 12 defaults to C++17; caffe (and protobuf 3.21 / boost 1.74 headers) are happy with C++14
CXXFLAGS += -std=c++14 -Wno-deprecated-declarations
LINKFLAGS += -Wl,-rpath,$PY_LIBDIR
EOF
# OpenCV >= 3 splits imgcodecs/videoio out of highgui; the fork Makefiles only add them for OPENCV_VERSION=3
# (handled above); nothing else to do for OpenCV 4.

# ---------------------------------------------------------------- 5. build
log "building $NAME ($COMMIT) with make -j$JOBS (log: $LOG)"
B0=$(date +%s)
if ! nice -n 10 make -j"$JOBS" ${MAKE_TARGETS:-lib tools py} >"$LOG" 2>&1; then
  grep -nE 'error|Error' "$LOG" | head -40 >&2 || true
  tail -30 "$LOG" >&2
  die "build failed (full log: $LOG)"
fi
B1=$(date +%s)
log "build ok in $((B1 - B0)) s"

# ---------------------------------------------------------------- 6. env.sh
cat >"$ROOT/env.sh" <<EOF
# source me: reference Caffe '$NAME' ($COMMIT), built by ../shared/tools/build-reference-caffe.sh
CAFFE_REF_HOME="$ROOT"
export CAFFE_ROOT="\$CAFFE_REF_HOME/src"
export PATH="\$CAFFE_ROOT/build/tools:\$CAFFE_REF_HOME/venv/bin\${PATH:+:\$PATH}"
export PYTHONPATH="\$CAFFE_ROOT/python\${PYTHONPATH:+:\$PYTHONPATH}"
export LD_LIBRARY_PATH="\$CAFFE_ROOT/build/lib:$PY_LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EOF
cat >"$ROOT/BUILD_INFO" <<EOF
name=$NAME
source=$SRC_GIT
ref=$REF
commit=$COMMIT
patches=v$PATCH_VERSION
use_opencv=$USE_OPENCV opencv_major=$OPENCV_MAJOR
python=$PYVER boost_python=$BOOST_PY protoc=$PROTOC_VER pb_spec=$PB_SPEC
build_seconds=$((B1 - B0))
built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF

# ---------------------------------------------------------------- 7. verify
if [ "${SKIP_VERIFY:-0}" != 1 ]; then
  log "verifying"
  (
    # shellcheck disable=SC1091
    . "$ROOT/env.sh"
    caffe --version 2>&1 | tail -1
    GLOG_minloglevel=2 python - <<'PYEOF'
import numpy as np, caffe
from caffe import layers as L
print("pycaffe:", caffe.__file__)
caffe.set_mode_cpu()
n = caffe.NetSpec()
n.data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
n.conv = L.Convolution(n.data, num_output=2, kernel_size=3,
                       weight_filler=dict(type="constant", value=1.0),
                       bias_filler=dict(type="constant", value=0.5))
import tempfile, os
with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
    f.write(str(n.to_proto()))
net = caffe.Net(f.name, caffe.TEST)
os.unlink(f.name)
net.blobs["data"].data[...] = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
out = net.forward()["conv"]
exp = np.array([[45, 54], [81, 90]], dtype=np.float32) + 0.5
assert out.shape == (1, 2, 2, 2) and np.allclose(out[0, 0], exp) and np.allclose(out[0, 1], exp), out
print("forward ok:", out[0, 0].tolist())
# Python layer support (WITH_PYTHON_LAYER=1)
import sys, tempfile as tf
d = tf.mkdtemp()
with open(os.path.join(d, "crefdouble.py"), "w") as f:
    f.write("import caffe\n"
            "class Double(caffe.Layer):\n"
            "    def setup(self, b, t): pass\n"
            "    def reshape(self, b, t): t[0].reshape(*b[0].data.shape)\n"
            "    def forward(self, b, t): t[0].data[...] = 2 * b[0].data\n"
            "    def backward(self, t, p, b): pass\n")
sys.path.insert(0, d)
with open(os.path.join(d, "net.prototxt"), "w") as f:
    f.write('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }\n'
            'layer { name: "dbl" type: "Python" bottom: "data" top: "out" '
            'python_param { module: "crefdouble" layer: "Double" } }\n')
net = caffe.Net(os.path.join(d, "net.prototxt"), caffe.TEST)
net.blobs["data"].data[...] = [1, 2, 3]
assert np.allclose(net.forward()["out"], [2, 4, 6])
print("python layer ok")
types = caffe.layer_type_list()
print("layers (%d):" % len(types), " ".join(types))
missing = [t for t in os.environ.get("EXPECT_LAYERS", "").split() if t not in types]
import shutil; shutil.rmtree(d, ignore_errors=True)
assert not missing, "missing layer types: %s" % missing
PYEOF
  )
fi
log "done: $NAME in $(( $(date +%s) - T0 )) s total; use: source $ROOT/env.sh"
