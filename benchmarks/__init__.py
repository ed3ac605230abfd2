"""Benchmarks. recaffe is imported first so that its defaults (OpenMP's wait policy, set before
torch loads: recaffe/_wait_policy.py) hold for every benchmark, as they do for the caffe command."""

import recaffe  # noqa: F401
