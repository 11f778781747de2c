"""Part arithmetic for S3 multipart uploads and copies (pure functions, unit-tested).

S3 allows at most 10,000 parts per upload, each 5 MiB to 5 GiB except the last, and an
object of at most 5 TiB. A blob streams in without a known length, so part sizes grow
with the part number: ``chunksize`` for the first 900 parts, then twice that for the
next 900, and so on (capped at 5 GiB). With the default 10 MiB chunks a 9 GiB layer
uses 900 parts, a 100 GiB one about 3,200, and even 5 MiB chunks reach S3's 5 TiB
object limit within 10,000 parts. Memory stays at one part being filled plus two in
flight.
"""

from __future__ import annotations

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_PART = 5 * MiB
MAX_PART = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT = 5 * 1024 * GiB
PARTS_PER_STEP = 900
# Copying an existing object into a new upload (an append) takes at most this many
# parts, so the data appended after it has the rest.
MAX_COPY_PARTS = 1_000


def part_size(number: int, chunksize: int) -> int:
    """The size of part ``number`` (1-based) of an upload of unknown length."""
    if number < 1:
        raise ValueError("part numbers start at 1")
    return min(chunksize << ((number - 1) // PARTS_PER_STEP), MAX_PART)


def parts_for(total: int, chunksize: int, first: int = 1) -> int:
    """How many parts a stream of ``total`` bytes takes from part ``first`` on."""
    count, left, number = 0, total, first
    while left > 0:
        left -= part_size(number, chunksize)
        count += 1
        number += 1
    return count


def copy_ranges(size: int, chunk: int, max_parts: int = MAX_COPY_PARTS) -> list[tuple[int, int]]:
    """Split ``size`` bytes (at least MIN_PART) into equal (first, last) byte ranges,
    inclusive as HTTP ranges are, for UploadPartCopy: each at least MIN_PART (chunk
    is at least 2 x MIN_PART), at most MAX_PART, and no more than ``max_parts``."""
    if size < MIN_PART:
        raise ValueError("a copied part must hold at least 5 MiB")
    chunk = max(chunk, 2 * MIN_PART)
    count = min(-(-size // chunk), max_parts)
    count = max(count, -(-size // MAX_PART))
    bounds = [i * size // count for i in range(count + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(count)]
