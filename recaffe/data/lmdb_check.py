"""An LMDB ``data.mdb`` checked before liblmdb maps it: damage there kills the process, not an error.

A truncated file makes the first touch of a missing page a SIGBUS; a damaged page makes liblmdb
fail an assertion (``IS_LEAF(mp)``) and abort. ``check_file`` reads the file itself first, without
mapping it, and raises a ``DataError`` naming the database when:

* the two meta pages (magic ``0xBEEFC0DE``, the page size, ``last_pg``, ``txnid``) are missing, or the
  file is shorter than the newer meta says (``(last_pg + 1) · page_size``);
* the main B-tree does not hold together: walking it from the root, each page must carry its own
  number, be a branch page above the last level and a leaf page on it, keep its node offsets and
  nodes inside the page, and point only at pages that exist (each once). Large values live on
  overflow pages; their first page's header is checked too when the file is under 2 GB (beyond
  that, only the page numbers: reading a header per record would read the whole database).

The walk reads branch and leaf pages only, a small part of a database of images.
Layout (64-bit liblmdb): a 16-byte page header (pgno u64, pad u16, flags u16, lower u16, upper u16;
an overflow page has its page count u32 in place of lower/upper), then u16 node offsets; a node is
(lo u16, hi u16, flags u16, ksize u16, key, data): a branch node's child page is lo | hi << 16 |
flags << 32, a leaf node's data size is lo | hi << 16 and, with F_BIGDATA, its data is a page number.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from recaffe.data import DataError

MAGIC = 0xBEEFC0DE
_HEADER = struct.Struct("<QHHHH")  # pgno, pad, flags, lower, upper
_NODE = struct.Struct("<HHHH")  # lo, hi, flags, ksize
_META = struct.Struct("<II8xQ")  # magic, version, mapsize (after the page header)
_DB = struct.Struct("<IHHQQQQQ")  # pad, flags, depth, branch/leaf/overflow pages, entries, root
_META_LAST = struct.Struct("<QQ")  # last_pg, txnid (after the two MDB_db records)
_P_BRANCH, _P_LEAF, _P_OVERFLOW, _P_LEAF2 = 0x01, 0x02, 0x04, 0x20
_F_BIGDATA = 0x01
_DUPSORT = 0x04
_NO_ROOT = 2**64 - 1
_OVERFLOW_HEADERS_UP_TO = 2 << 30
_REBUILD = "Rebuild the database or restore it from a good copy"


def check_file(path: str, where: str) -> None:
    """See the module docstring; a missing file is left for liblmdb to report."""
    data_file = path if os.path.isfile(path) else os.path.join(path, "data.mdb")
    try:
        size = os.path.getsize(data_file)
        with open(data_file, "rb") as f:
            _Walk(f, size, data_file, where).run()
    except FileNotFoundError:
        return
    except OSError as e:
        raise DataError(f"cannot open the {where}: cannot read {data_file!r} ({e.strerror})") from e


class _Walk:
    def __init__(self, f: BinaryIO, size: int, data_file: str, where: str) -> None:
        self.f, self.size, self.data_file, self.where = f, size, data_file, where

    def fail(self, problem: str) -> DataError:
        return DataError(f"cannot open the {self.where}: {self.data_file!r} {problem}. {_REBUILD}")

    def run(self) -> None:
        head = self.f.read(256)
        if len(head) < 16 + _META.size + 2 * _DB.size + _META_LAST.size:
            raise self.fail("is too short to be an LMDB data file")
        magic, _, _ = _META.unpack_from(head, 16)
        self.page_size = _DB.unpack_from(head, 16 + _META.size)[0]
        if magic != MAGIC or not 512 <= self.page_size <= 1 << 16:
            raise DataError(f"cannot open the {self.where}: {self.data_file!r} is not an LMDB data file "
                            f"(no LMDB meta page)")
        metas = [head]
        self.f.seek(self.page_size)
        second = self.f.read(len(head))
        if len(second) == len(head) and _META.unpack_from(second, 16)[0] == MAGIC:
            metas.append(second)
        meta = max(metas, key=lambda m: _META_LAST.unpack_from(m, 16 + _META.size + 2 * _DB.size)[1])
        self.last_page = _META_LAST.unpack_from(meta, 16 + _META.size + 2 * _DB.size)[0]
        needed = (self.last_page + 1) * self.page_size
        if self.size < needed:
            raise DataError(f"cannot open the {self.where}: {self.data_file!r} is truncated ({self.size} "
                            f"bytes, its meta page says {needed}). {_REBUILD}")
        _, flags, depth, *_, root = _DB.unpack_from(meta, 16 + _META.size + _DB.size)
        if root == _NO_ROOT or flags & _DUPSORT:
            return  # an empty database, or sorted duplicates (never written by Caffe's tools)
        if not 1 <= depth <= 64:
            raise self.fail(f"has a B-tree of depth {depth}")
        self.seen: set[int] = set()
        self.tree(root, depth)

    def page(self, number: int) -> bytes:
        if not 2 <= number <= self.last_page or number in self.seen:
            raise self.fail(f"has a damaged page reference ({number}; pages 2 to {self.last_page} exist)")
        self.seen.add(number)
        self.f.seek(number * self.page_size)
        return self.f.read(self.page_size)

    def tree(self, root: int, depth: int) -> None:
        level = [root]
        for height in range(depth):
            leaf = height == depth - 1
            below: list[int] = []
            for number in level:
                page = self.page(number)
                for offset in self.nodes(page, number, _P_LEAF if leaf else _P_BRANCH):
                    lo, hi, flags, ksize = _NODE.unpack_from(page, offset)
                    if not leaf:
                        self.fits(offset, ksize, number)
                        below.append(lo | hi << 16 | flags << 32)
                    elif flags & _F_BIGDATA:
                        self.fits(offset, ksize + 8, number)
                        self.overflow(struct.unpack_from("<Q", page, offset + 8 + ksize)[0], lo | hi << 16)
                    else:
                        self.fits(offset, ksize + (lo | hi << 16), number)
            level = below

    def nodes(self, page: bytes, number: int, kind: int) -> list[int]:
        pgno, _, flags, lower, upper = _HEADER.unpack_from(page)
        if pgno != number or flags & (_P_BRANCH | _P_LEAF | _P_OVERFLOW | _P_LEAF2) != kind:
            raise self.fail(f"has a damaged page {number}")
        if not _HEADER.size <= lower <= upper <= self.page_size or lower % 2:
            raise self.fail(f"has a damaged page {number} (free space {lower}..{upper})")
        offsets = struct.unpack_from(f"<{(lower - _HEADER.size) // 2}H", page, _HEADER.size)
        if any(not upper <= offset <= self.page_size - _NODE.size for offset in offsets):
            raise self.fail(f"has a damaged page {number} (a node outside the page)")
        return list(offsets)

    def fits(self, offset: int, length: int, number: int) -> None:
        if offset + _NODE.size + length > self.page_size:
            raise self.fail(f"has a damaged page {number} (a node longer than the page)")

    def overflow(self, number: int, length: int) -> None:
        if not 2 <= number <= self.last_page:
            raise self.fail(f"has a damaged page reference ({number}; pages 2 to {self.last_page} exist)")
        if self.size > _OVERFLOW_HEADERS_UP_TO:
            return
        self.f.seek(number * self.page_size)
        pgno, _, flags, pages = struct.unpack("<QHHI", self.f.read(_HEADER.size))
        if pgno != number or not flags & _P_OVERFLOW or number + pages - 1 > self.last_page \
                or pages * self.page_size - _HEADER.size < length:
            raise self.fail(f"has a damaged overflow page {number}")
