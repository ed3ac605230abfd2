"""SIGINT/SIGHUP → solver actions, as Caffe's ``SignalHandler`` does for ``caffe train``.

The handlers only set a flag. The solver polls ``check()`` (its action function) after each
iteration and between test batches, and gets the action configured for the signal that arrived
since the last poll: SIGHUP wins over SIGINT, and each flag is cleared when read. With the
defaults, Ctrl-C stops training (after a final snapshot, by ``snapshot_after_train``) and
``kill -HUP`` writes a snapshot and carries on.
"""

from __future__ import annotations

import argparse
import signal
import types
from collections.abc import Callable
from typing import Any

from recaffe.solver import NONE, SNAPSHOT, STOP

EFFECTS = (SNAPSHOT, STOP, NONE)  # the order Caffe's help text gives them

Handler = Callable[[int, types.FrameType | None], Any] | int | None


def signal_effect(value: str) -> str:
    """argparse type for ``-sigint_effect``/``-sighup_effect``."""
    if value not in EFFECTS:
        raise argparse.ArgumentTypeError(
            f'invalid signal effect "{value}" was specified; use one of {", ".join(EFFECTS)}')
    return value


class SignalHandler:
    """Context manager installing the flag-setting handlers; restores the previous ones on exit."""

    def __init__(self, sigint_effect: str = STOP, sighup_effect: str = SNAPSHOT) -> None:
        for effect in (sigint_effect, sighup_effect):
            signal_effect(effect)
        self._effects = {signal.SIGINT: sigint_effect}
        if hasattr(signal, "SIGHUP"):
            self._effects[signal.SIGHUP] = sighup_effect
        self._received: set[int] = set()
        self._previous: dict[int, Handler] = {}

    def __enter__(self) -> SignalHandler:
        if self._previous:
            raise RuntimeError("the signal handlers are already installed")
        for signum in self._effects:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        self._received.add(signum)

    def _take(self, signum: int | None) -> bool:
        if signum in self._received:
            self._received.discard(signum)
            return True
        return False

    def check(self) -> str:
        """The action requested since the last call: "snapshot", "stop" or "none"."""
        for signum in (getattr(signal, "SIGHUP", None), signal.SIGINT):
            if signum is not None and self._take(signum):
                return self._effects[signum]
        return NONE
