# alexgkendall/caffe-segnet (segnet-cleaned): build fixes for a 2015 Caffe.
set -euo pipefail
. "$PATCH_DIR/old_makefile.sh"
. "$PATCH_DIR/old_sources.sh"
. "$PATCH_DIR/py3.sh"
