"""A tar archive's stream as tarfile reads it, refused past a budget of bytes.

``archive.extract`` checks each member's size as it comes, but the metadata headers that
describe a member (pax extended headers, GNU long names) are not members: tarfile reads one
whole into memory before it yields the member, so a 200 MB pax header, compressed to 200 kB,
was accepted and took 615 MB of memory. Here every byte tarfile reads or skips of the
decompressed stream counts against the members' data limit plus an allowance for headers, and a
single read larger than any real header is refused before it is made.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import tarfile
from pathlib import Path
from typing import Any

from tftrt_build.errors import SourceError

# tarfile reads a pax or GNU long-name header whole into memory before it yields the member
# the header describes; real ones hold a path and a few attributes. Anything bigger is refused
# before it is read (member data is read in 16 KiB pieces, far below this).
MAX_HEADER = 1 << 20
# What a tar holds besides its members' data: per member a header, the padding of its data to
# 512 bytes and a typical pax header; plus the end-of-archive blocks.
_OVERHEAD_PER_MEMBER = 4 * tarfile.BLOCKSIZE


class Bounded(io.RawIOBase):
    """The decompressed tar stream, counted by the furthest byte tarfile reads or seeks to."""

    def __init__(self, raw: io.BufferedIOBase, budget: int, label: str) -> None:
        self.raw, self.budget, self.label = raw, budget, label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.raw.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._allow(offset)
        return self.raw.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_HEADER:
            raise SourceError(
                f"{self.label} holds a tar header of more than {MAX_HEADER} bytes (a header "
                "bomb?); nothing was kept"
            )
        self._allow(self.raw.tell() + size)
        return self.raw.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _allow(self, end: int) -> None:
        if end > self.budget:
            raise SourceError(
                f"{self.label} unpacks to more than {self.budget} bytes of tar stream (its "
                "members' data within the limit, plus headers); nothing was kept"
            )


def open_tar(
    archive: Path, label: str, max_bytes: int, max_members: int, stack: contextlib.ExitStack
) -> tarfile.TarFile:
    """The tar in ``archive`` (compressed or not), read within the budget its limits allow."""
    budget = max_bytes + (max_members + 2) * _OVERHEAD_PER_MEMBER + MAX_HEADER
    stream = Bounded(_decompressed(archive, stack), budget, label)
    return stack.enter_context(tarfile.open(fileobj=stream))


def _decompressed(archive: Path, stack: contextlib.ExitStack) -> io.BufferedIOBase:
    """The tar inside ``archive``, told by its first bytes as tarfile would tell it."""
    with archive.open("rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return stack.enter_context(gzip.open(archive, "rb"))
    if magic.startswith(b"BZh"):
        return stack.enter_context(bz2.open(archive, "rb"))
    if magic.startswith(b"\xfd7zXZ\x00"):
        return stack.enter_context(lzma.open(archive, "rb"))
    return stack.enter_context(archive.open("rb"))
