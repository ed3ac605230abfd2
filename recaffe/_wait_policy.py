"""OpenMP's idle threads spin only briefly, then sleep, unless the user chose otherwise.

PyTorch's OpenMP threads (GNU libgomp) spin at the end of each parallel kernel, waiting for the
next: by default for about 300,000 polls (milliseconds). On a machine whose cores other processes
keep busy, a spinning thread holds a core that the thread it waits for needs, and a net of many
small kernels runs several times slower on two threads than on one (``benchmarks/threads.py``:
4-18x the 1-thread time with libgomp's default). Sleeping at once (``OMP_WAIT_POLICY=PASSIVE``,
no spin) fixes that but costs on an idle machine: a thread woken for the next kernel waits to be
scheduled, and on a virtual machine it may then run from cold caches. So recaffe sets the policy
to PASSIVE with a short spin, ``GOMP_SPINCOUNT=10000`` polls (roughly 0.1-0.5 ms): long enough to
carry a thread from one kernel to the next within a deploy-mode pass, short enough to leave a busy
core soon (both measured in ``benchmarks/threads.py`` and ``benchmarks/opencv_dnn.py``).

libgomp reads these once, when torch is imported, so they are set here, before recaffe imports
torch, unless ``OMP_WAIT_POLICY`` is set already (then neither is touched) or torch was imported
first (then nothing changes: set the variables in the environment, or import recaffe before torch).
An explicit ``GOMP_SPINCOUNT`` is kept.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"
SPIN_COUNT = "GOMP_SPINCOUNT"
SPINS = "10000"

if "torch" not in sys.modules and WAIT_POLICY not in os.environ:
    os.environ[WAIT_POLICY] = "PASSIVE"
    os.environ.setdefault(SPIN_COUNT, SPINS)
