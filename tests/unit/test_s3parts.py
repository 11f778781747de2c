"""S3 multipart arithmetic: part sizes grow so any layer fits S3's 10,000 parts."""

from __future__ import annotations

import itertools

import pytest

from hatchway.storage.s3parts import (
    MAX_OBJECT,
    MAX_PART,
    MAX_PARTS,
    MIN_PART,
    GiB,
    MiB,
    copy_ranges,
    part_size,
    parts_for,
)


def test_parts_start_at_the_chunk_size_and_grow() -> None:
    assert part_size(1, 10 * MiB) == 10 * MiB
    assert part_size(900, 10 * MiB) == 10 * MiB
    assert part_size(901, 10 * MiB) == 20 * MiB
    assert part_size(2701, 10 * MiB) == 80 * MiB
    assert part_size(10_000, 5 * GiB) == MAX_PART
    with pytest.raises(ValueError, match="start at 1"):
        part_size(0, 10 * MiB)


@pytest.mark.parametrize("chunksize", [5 * MiB, 10 * MiB, 64 * MiB])
def test_a_100_gib_layer_stays_under_10000_parts(chunksize: int) -> None:
    assert parts_for(100 * GiB, chunksize) < MAX_PARTS


def test_even_the_smallest_chunks_reach_the_largest_object() -> None:
    assert parts_for(MAX_OBJECT, MIN_PART) <= MAX_PARTS
    assert all(part_size(n, MIN_PART) <= MAX_PART for n in range(1, MAX_PARTS + 1))


def test_a_2_gib_layer_uses_default_parts() -> None:
    assert parts_for(2 * GiB, 10 * MiB) == 205


@pytest.mark.parametrize(
    "size", [MIN_PART, MIN_PART + 1, 32 * MiB, 33 * MiB, 100 * GiB + 7, MAX_OBJECT]
)
def test_copy_ranges_cover_the_object_in_valid_parts(size: int) -> None:
    ranges = copy_ranges(size, 32 * MiB)
    assert ranges[0][0] == 0
    assert ranges[-1][1] == size - 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    assert all(MIN_PART <= last - first + 1 <= MAX_PART for first, last in ranges)
    assert len(ranges) <= max(1000, -(-size // MAX_PART))


def test_copy_ranges_refuse_less_than_a_part() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        copy_ranges(MIN_PART - 1, 32 * MiB)
