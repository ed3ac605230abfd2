"""Progress for long conversions: a tqdm bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TypeVar

from recaffe import logs

T = TypeVar("T")
log = logging.getLogger("recaffe.tools")


def track(items: Iterable[T], total: int | None, desc: str, every: int = 1000) -> Iterator[T]:
    """Yield ``items``, showing progress on stderr: a bar if it is a TTY, else a log line per ``every``."""
    if logs.wants_progress_bar("auto"):
        # log lines are printed above this bar while it is shown (see recaffe.logs)
        with logs.progress_bar(total, desc, unit=" records") as bar:
            for item in items:
                yield item
                bar.update(1)
        return
    done = 0
    for done, item in enumerate(items, 1):
        yield item
        if done % every == 0:
            log.info("%s: processed %d%s.", desc, done, f" of {total}" if total else "")
    if done % every:
        log.info("%s: processed %d%s.", desc, done, f" of {total}" if total else "")
