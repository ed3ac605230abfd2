"""The manual SGD loop of docs/manual_sgd_loop.md, as a module: ``caffe repro -settings manual``
runs it beside ``solver.step()``. The code below is the page's first block, character for
character (tests/debug/test_repro.py keeps the two equal).
"""

import numpy as np
import torch

from recaffe.net import Net
from recaffe.proto import caffe_pb2
from recaffe.registry import LR_POLICIES


def manual_sgd_step(net: Net, param: caffe_pb2.SolverParameter, history: list[torch.Tensor],
                    iteration: int) -> None:
    """One iteration of Caffe's SGD solver on ``net`` (a TRAIN-phase recaffe.Net).

    ``param`` is the SolverParameter, ``history`` one zero-initialised tensor per entry of
    ``net.learnable_params`` (kept between calls), ``iteration`` the number of updates done.
    """
    # The rate of the lr_policy (current_step 0 is right for every policy but multistep).
    rate, _ = LR_POLICIES.get(param.lr_policy)(param, iteration, 0)

    # 1. Param diffs are cleared once per iteration, then accumulate over iter_size passes.
    net.clear_param_diffs()
    for _ in range(param.iter_size):
        net.forward()
        net.backward()
    params = net.learnable_params

    # 2. Clip the global L2 norm of the raw accumulated diffs (float32 arithmetic).
    if param.clip_gradients >= 0:
        sumsq = np.float32(0)
        for p in params:
            sumsq += np.float32(p.blob.sumsq_diff())
        l2norm = np.sqrt(sumsq)
        if l2norm > param.clip_gradients:
            scale = np.float32(param.clip_gradients) / l2norm
            for p in params:
                p.blob.diff.mul_(float(scale))

    for p, h in zip(params, history):
        diff, data = p.blob.diff, p.blob.data
        # 3. Normalize the accumulation.
        if param.iter_size > 1:
            diff.mul_(1.0 / param.iter_size)
        # 4. L2 weight decay, scaled by the param's decay_mult.
        local_decay = param.weight_decay * p.decay_mult
        if local_decay:
            diff.add_(data * local_decay)
        # 5. Momentum with the param's lr_mult: h <- momentum*h + rate*lr_mult*diff; diff <- h.
        h.mul_(param.momentum).add_(diff * float(np.float32(rate * p.lr_mult)))
        diff.copy_(h)

    # 6. w <- w - diff for every learnable param.
    net.update()
