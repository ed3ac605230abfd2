"""OpenMP's idle threads sleep instead of spinning, unless the user chose otherwise.

PyTorch's OpenMP threads (GNU libgomp) spin for a while at the end of each parallel kernel,
waiting for the next. On a machine whose cores other processes keep busy, a spinning thread holds
a core that the thread it waits for needs, and a net of many small kernels runs several times
slower on two threads than on one (``benchmarks/threads.py``: the "OpenMP" setting, 4-18x the
1-thread time with the default policy, 0.3-0.9x with ``OMP_WAIT_POLICY=PASSIVE``). libgomp reads
the policy once, when torch is imported, so it is set here, before recaffe imports torch, unless
``OMP_WAIT_POLICY`` is set already or torch was imported first (then nothing changes: set the
variable in the environment, or import recaffe before torch).
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"

if "torch" not in sys.modules:
    os.environ.setdefault(WAIT_POLICY, "PASSIVE")
