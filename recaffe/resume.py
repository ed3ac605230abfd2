"""Exact resume (beyond Caffe): the state a solver snapshot adds so a resumed run is the same run.

Caffe's solver state holds the iteration, the weights file, the multistep position and the
solver's history; resuming from it restarts every data layer at the beginning of its data and
every random stream afresh, so the resumed run differs from the uninterrupted one. recaffe also
saves, in ``SolverState.recaffe_resume`` (field 1000, which BVLC Caffe skips as unknown; the
dataset ``recaffe_resume`` in an HDF5 solver state):

* the main Caffe random stream (fillers, Dropout masks, data layers' seeds);
* for each data layer of the train net and of each test net, where it reads next as of the last
  batch it handed out (the Data layer's record key, ImageData's list position and order, HDF5Data's
  file and row order, WindowData's engine) and its DataTransformer's engine. Batches the prefetch
  thread had loaded ahead are not saved: they are loaded again, identically, from that position;
* glibc ``rand()``'s state (HDF5Data's shuffle).

A layer takes part by implementing ``save_resume_state(out)`` and ``load_resume_state(state)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from recaffe import errors, rng
from recaffe.data import crand
from recaffe.proto import caffe_pb2

log = logging.getLogger(__name__)

_MT_WORDS = 624


@runtime_checkable
class Resumable(Protocol):
    @property
    def name(self) -> str: ...

    def save_resume_state(self, out: caffe_pb2.RecaffeDataState) -> None: ...

    def load_resume_state(self, state: caffe_pb2.RecaffeDataState) -> None: ...


ResumePoint = Callable[[caffe_pb2.RecaffeDataState], None]
"""Writes where a data loader was when it was taken (taken per batch, written only at a snapshot)."""

def write_rng(state: rng.RngState, out: caffe_pb2.RecaffeRngState) -> None:
    """A ``CaffeRNG.get_state()`` into its proto."""
    seed, key, position, buffered = state
    out.seed, out.mt_pos = seed, position
    out.mt_key[:] = key.tolist()
    out.buffered[:] = buffered.tolist()


def load_rng(state: caffe_pb2.RecaffeRngState, where: str) -> rng.CaffeRNG:
    if len(state.mt_key) != _MT_WORDS or not 0 <= state.mt_pos <= _MT_WORDS:
        raise errors.unreadable(where, "solver state", f"a random stream's state needs {_MT_WORDS} key "
                                f"words and a position up to {_MT_WORDS}, got {len(state.mt_key)} words "
                                f"and position {state.mt_pos}")
    stream = rng.CaffeRNG(state.seed)
    stream.set_state(state.seed, np.array(state.mt_key, dtype=np.uint32), state.mt_pos,
                     np.array(state.buffered, dtype=np.uint32))
    return stream


def capture(nets: Sequence[Any]) -> caffe_pb2.RecaffeResumeState:
    """The resume record of a solver's nets (the train net first, then the test nets)."""
    state = caffe_pb2.RecaffeResumeState()
    write_rng(rng.get_rng().get_state(), state.caffe_rng)
    state.c_rand[:] = crand.PROCESS_RAND.get_state()
    for net_index, net in enumerate(nets):
        for layer in net.layers:
            if isinstance(layer, Resumable):
                entry = state.data.add(net=net_index, layer=layer.name)
                layer.save_resume_state(entry)
    return state


def apply(state: caffe_pb2.RecaffeResumeState, nets: Sequence[Any], source: str | os.PathLike[str]) -> None:
    """Put the data layers, glibc's ``rand()`` and the main random stream where ``capture`` saw them."""
    where = os.fspath(source)
    for entry in state.data:
        net = nets[entry.net] if 0 <= entry.net < len(nets) else None
        if net is None or not net.has_layer(entry.layer):
            log.warning("%s: no data layer %r in net #%d to resume; it is skipped", where, entry.layer,
                        entry.net)
            continue
        layer = net.layers[net.layer_index(entry.layer)]
        if isinstance(layer, Resumable):
            layer.load_resume_state(entry)
    if len(state.c_rand) == 34:
        crand.PROCESS_RAND.set_state(list(state.c_rand))
    if state.HasField("caffe_rng"):
        rng.set_rng(load_rng(state.caffe_rng, where))
