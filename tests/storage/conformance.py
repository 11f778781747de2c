"""One storage-driver conformance suite, bound to every driver (as distribution's testsuites).

A driver's test module subclasses :class:`DriverConformance` and overrides the ``driver``
fixture with a fresh, empty driver; optionally it overrides :meth:`leftovers` to report
what only that driver can see (temp files on disk...). After every test the suite checks
that nothing was left behind: no leftovers, no leaked file descriptors, and a tree in
which every listed key is a valid path that stats and reads back consistently.

Tests are ``async def`` run by :func:`tests.support.aio.async_test` (one event loop each).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator

import pytest

from hatchway.storage.driver import (
    InvalidPathError,
    PathNotFoundError,
    StorageDriver,
    StorageError,
    check_path,
)
from tests.storage.lock_conformance import LockConformance
from tests.support.aio import async_test

MiB = 1024 * 1024
BIG = os.urandom(5 * MiB + 12345)  # not a multiple of any chunk size
BINARY = bytes(range(256)) * 4 + b"\x00\r\n\x00\xff"

# Keys the Protocol refuses: not absolute, empty or dot components, trailing "/", and
# characters outside [A-Za-z0-9._-] ("~" marks temp files; a space; a trailing newline).
BAD_PATHS = [
    "",
    "relative",
    "relative/file",
    "/a/../b",
    "/..",
    "/a/..",
    "/.",
    "/a/./b",
    "//a",
    "/a//b",
    "/a/",
    "/a/b/",
    "/a~tmp",
    "/a/b~tmp-0123",
    "~/a",
    "/a b",
    "/a\tb",
    "/a\nb",
    "/abc\n",
    "/a\\b",
    "/a:b",
    "/a*b",
    "/\u00e4",
    "/a\x00b",
]


def _open_fds() -> set[tuple[int, str]]:
    """This process's descriptors and what they point at. Only new ones count as a leak:
    a driver of an earlier test, freed by the garbage collector, may close its own."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the one listdir itself used is gone
            found.add((int(fd), os.readlink(f"/proc/self/fd/{fd}")))
    return found


async def read_all(driver: StorageDriver, path: str, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in driver.reader(path, offset)])


async def tree(driver: StorageDriver, path: str = "/") -> dict[str, bytes]:
    """Every file under ``path`` with its content, checking the tree is consistent."""
    try:
        children = await driver.list(path)
    except PathNotFoundError:
        if path == "/":  # a driver that cannot list an empty root (checked elsewhere)
            return {}
        raise
    files: dict[str, bytes] = {}
    for child in children:
        assert check_path(child) == child
        parent = child.rsplit("/", 1)[0] or "/"
        assert parent == path, f"{child!r} listed under {path!r}"
        info = await driver.stat(child)
        assert info.path == child
        if info.is_dir:
            files.update(await tree(driver, child))
        else:
            data = await driver.get_content(child)
            assert info.size == len(data), child
            files[child] = data
    return files


class DriverConformance(LockConformance):
    """Subclass as ``TestXxxDriver`` and override the ``driver`` fixture."""

    @pytest.fixture
    def driver(self) -> StorageDriver:
        raise NotImplementedError("bind the suite to a driver")

    def leftovers(self, driver: StorageDriver) -> list[str]:
        """Driver-specific debris after a test (e.g. temp files on disk); none by default."""
        return []

    @pytest.fixture(autouse=True)
    def _left_nothing_behind(self, driver: StorageDriver) -> Iterator[None]:
        fds = _open_fds()
        yield
        assert self.leftovers(driver) == []
        assert _open_fds() - fds == set(), "the driver leaked file descriptors"
        asyncio.run(tree(driver))

    # -- put_content / get_content ------------------------------------------------------

    @async_test
    async def test_put_get_empty(self, driver: StorageDriver) -> None:
        await driver.put_content("/empty", b"")
        assert await driver.get_content("/empty") == b""
        assert (await driver.stat("/empty")).size == 0

    @async_test
    async def test_put_get_binary(self, driver: StorageDriver) -> None:
        await driver.put_content("/dir/sub/binary", BINARY)
        assert await driver.get_content("/dir/sub/binary") == BINARY
        assert (await driver.stat("/dir/sub/binary")).size == len(BINARY)

    @async_test
    async def test_put_get_large(self, driver: StorageDriver) -> None:
        await driver.put_content("/big/data", BIG)
        assert await driver.get_content("/big/data") == BIG
        assert (await driver.stat("/big/data")).size == len(BIG)

    @async_test
    async def test_get_missing(self, driver: StorageDriver) -> None:
        await driver.put_content("/a/file", b"x")
        for missing in ("/nope", "/a/nope", "/nope/deeper/still", "/a/file/child"):
            with pytest.raises(PathNotFoundError) as info:
                await driver.get_content(missing)
            assert info.value.path == missing
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/a")  # a directory is not content

    @async_test
    async def test_overwrite_replaces_whole_content(self, driver: StorageDriver) -> None:
        await driver.put_content("/f", b"a much longer first version")
        await driver.put_content("/f", b"short")
        assert await driver.get_content("/f") == b"short"
        assert (await driver.stat("/f")).size == 5
        await driver.put_content("/f", b"")
        assert await driver.get_content("/f") == b""
        assert await driver.list("/") == ["/f"]

    @async_test
    async def test_overwrite_is_atomic_for_an_open_reader(self, driver: StorageDriver) -> None:
        await driver.put_content("/f", BIG)
        stream = driver.reader("/f")
        first = await anext(stream)
        await driver.put_content("/f", b"new")  # readers see old or new, never a mix
        rest = b"".join([chunk async for chunk in stream])
        assert first + rest == BIG
        assert await driver.get_content("/f") == b"new"

    @async_test
    async def test_concurrent_overwrites_are_atomic(self, driver: StorageDriver) -> None:
        versions = [bytes([i]) * (200_000 + 7919 * i) for i in range(8)]
        await driver.put_content("/f", versions[0])
        seen: list[bytes] = []

        async def read_often() -> None:
            for _ in range(40):
                seen.append(await driver.get_content("/f"))
                await asyncio.sleep(0)

        await asyncio.gather(
            *(driver.put_content("/f", v) for v in versions[1:]), read_often(), read_often()
        )
        assert all(data in versions for data in seen)
        assert await driver.get_content("/f") in versions[1:]

    # -- reader -------------------------------------------------------------------------

    @async_test
    async def test_reader_streams_whole_file(self, driver: StorageDriver) -> None:
        await driver.put_content("/r/big", BIG)
        chunks = [chunk async for chunk in driver.reader("/r/big")]
        assert len(chunks) > 1, "a 5 MiB file should stream in chunks"
        assert all(chunks)
        assert b"".join(chunks) == BIG

    @async_test
    async def test_reader_offsets(self, driver: StorageDriver) -> None:
        await driver.put_content("/r/big", BIG)
        size = len(BIG)
        for offset in (0, 1, MiB - 1, MiB, MiB + 1, 3 * MiB + 17, size - 1):
            assert await read_all(driver, "/r/big", offset) == BIG[offset:], offset
        assert await read_all(driver, "/r/big", size) == b""
        assert await read_all(driver, "/r/big", size + 1) == b""
        assert await read_all(driver, "/r/big", size + 10 * MiB) == b""

    @async_test
    async def test_reader_small_and_empty(self, driver: StorageDriver) -> None:
        await driver.put_content("/r/empty", b"")
        await driver.put_content("/r/small", b"hello")
        assert await read_all(driver, "/r/empty") == b""
        assert await read_all(driver, "/r/empty", 5) == b""
        assert await read_all(driver, "/r/small", 2) == b"llo"
        assert await read_all(driver, "/r/small", 5) == b""

    @async_test
    async def test_reader_missing(self, driver: StorageDriver) -> None:
        await driver.put_content("/r/file", b"x")
        for missing in ("/nope", "/r/nope", "/r/file/child", "/r"):
            stream = driver.reader(missing)
            with pytest.raises(PathNotFoundError):
                await anext(stream)
            with pytest.raises(PathNotFoundError):
                await read_all(driver, missing, 1)

    # -- writer -------------------------------------------------------------------------

    @async_test
    async def test_writer_create_and_commit(self, driver: StorageDriver) -> None:
        w = await driver.writer("/w/new/file")
        assert w.size == 0
        await w.write(b"abc")
        assert w.size == 3
        await w.write(memoryview(b"--defgh")[2:])
        assert w.size == 8
        await w.write(b"")
        assert w.size == 8
        await w.commit()
        assert await driver.get_content("/w/new/file") == b"abcdefgh"
        assert (await driver.stat("/w/new/file")).size == 8

    @async_test
    async def test_writer_empty_commit_creates_empty_file(self, driver: StorageDriver) -> None:
        w = await driver.writer("/w/empty")
        await w.commit()
        assert await driver.get_content("/w/empty") == b""

    @async_test
    async def test_writer_streams_large_file(self, driver: StorageDriver) -> None:
        w = await driver.writer("/w/big")
        view = memoryview(BIG)
        for start in range(0, len(BIG), 64 * 1024):
            await w.write(view[start : start + 64 * 1024])
        assert w.size == len(BIG)
        await w.commit()
        assert await driver.get_content("/w/big") == BIG
        assert await read_all(driver, "/w/big", MiB) == BIG[MiB:]

    @async_test
    async def test_writer_truncates_without_append(self, driver: StorageDriver) -> None:
        await driver.put_content("/w/f", b"old content, long")
        w = await driver.writer("/w/f")
        assert w.size == 0
        await w.write(b"new")
        await w.commit()
        assert await driver.get_content("/w/f") == b"new"

    @async_test
    async def test_writer_append(self, driver: StorageDriver) -> None:
        w = await driver.writer("/w/f", append=True)  # append to nothing creates
        assert w.size == 0
        await w.write(b"one,")
        await w.close()
        w = await driver.writer("/w/f", append=True)
        assert w.size == 4
        await w.write(b"two,")
        assert w.size == 8
        await w.commit()
        w = await driver.writer("/w/f", append=True)
        assert w.size == 8
        await w.write(BIG)
        assert w.size == 8 + len(BIG)
        await w.commit()
        assert await driver.get_content("/w/f") == b"one,two," + BIG
        assert (await driver.stat("/w/f")).size == 8 + len(BIG)

    @async_test
    async def test_writer_close_keeps_data(self, driver: StorageDriver) -> None:
        w = await driver.writer("/w/f")
        await w.write(b"kept")
        await w.close()
        assert await driver.get_content("/w/f") == b"kept"

    @async_test
    async def test_writer_cancel_deletes(self, driver: StorageDriver) -> None:
        w = await driver.writer("/w/new")
        await w.write(b"doomed")
        await w.cancel()
        with pytest.raises(PathNotFoundError):
            await driver.stat("/w/new")
        await driver.put_content("/w/old", b"old")
        w = await driver.writer("/w/old", append=True)
        await w.write(b"more")
        await w.cancel()
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/w/old")

    @async_test
    async def test_writer_close_after_commit_or_cancel_is_harmless(
        self, driver: StorageDriver
    ) -> None:
        w = await driver.writer("/w/committed")
        await w.write(b"data")
        await w.commit()
        await w.close()
        await w.commit()
        assert await driver.get_content("/w/committed") == b"data"
        w = await driver.writer("/w/cancelled")
        await w.write(b"data")
        await w.cancel()
        await w.close()  # must not bring the cancelled file back
        with pytest.raises(PathNotFoundError):
            await driver.stat("/w/cancelled")

    @async_test
    async def test_concurrent_writers_to_different_files(self, driver: StorageDriver) -> None:
        async def write(i: int) -> None:
            w = await driver.writer(f"/c/{i % 4}/file-{i}")
            for n in range(32):
                await w.write(bytes([i]) * (1000 + n))
                await asyncio.sleep(0)
            await w.commit()

        await asyncio.gather(*(write(i) for i in range(16)))
        for i in range(16):
            expected = b"".join(bytes([i]) * (1000 + n) for n in range(32))
            assert await driver.get_content(f"/c/{i % 4}/file-{i}") == expected
        assert sorted(await driver.list("/c")) == [f"/c/{n}" for n in range(4)]

    @async_test
    async def test_concurrent_puts_to_different_files(self, driver: StorageDriver) -> None:
        await asyncio.gather(
            *(driver.put_content(f"/p/{i}/data", f"content {i}".encode()) for i in range(32))
        )
        for i in range(32):
            assert await driver.get_content(f"/p/{i}/data") == f"content {i}".encode()

    # -- stat ---------------------------------------------------------------------------

    @async_test
    async def test_stat_file(self, driver: StorageDriver) -> None:
        before = time.time()
        await driver.put_content("/s/dir/file", b"12345")
        after = time.time()
        info = await driver.stat("/s/dir/file")
        assert info.path == "/s/dir/file"
        assert info.size == 5
        assert not info.is_dir
        assert before - 1 <= info.modified <= after + 1

    @async_test
    async def test_stat_dir(self, driver: StorageDriver) -> None:
        before = time.time()
        await driver.put_content("/s/dir/file", b"12345")
        after = time.time()
        for directory in ("/s", "/s/dir"):
            info = await driver.stat(directory)
            assert info.path == directory
            assert info.is_dir
            assert info.size == 0
            assert before - 1 <= info.modified <= after + 1

    @async_test
    async def test_stat_missing(self, driver: StorageDriver) -> None:
        await driver.put_content("/s/file", b"x")
        for missing in ("/nope", "/s/nope", "/s/file/child", "/s/fil"):
            with pytest.raises(PathNotFoundError):
                await driver.stat(missing)

    # -- list ---------------------------------------------------------------------------

    @async_test
    async def test_list_empty_root(self, driver: StorageDriver) -> None:
        # As distribution's TestRootExists: "/" always exists, even in an empty store.
        assert await driver.list("/") == []

    @async_test
    async def test_list_direct_children_full_paths(self, driver: StorageDriver) -> None:
        for path in ("/l/a", "/l/b", "/l/sub/c", "/l/sub/deeper/d", "/l/sub2/e", "/top"):
            await driver.put_content(path, b"x")
        assert sorted(await driver.list("/")) == ["/l", "/top"]
        assert sorted(await driver.list("/l")) == ["/l/a", "/l/b", "/l/sub", "/l/sub2"]
        assert sorted(await driver.list("/l/sub")) == ["/l/sub/c", "/l/sub/deeper"]
        assert await driver.list("/l/sub/deeper") == ["/l/sub/deeper/d"]

    @async_test
    async def test_list_missing_and_file(self, driver: StorageDriver) -> None:
        await driver.put_content("/l/file", b"x")
        for path in ("/nope", "/l/nope", "/l/file", "/l/file/child", "/l/fi"):
            with pytest.raises(PathNotFoundError):
                await driver.list(path)

    @async_test
    async def test_list_version_changes_when_children_come_or_go(
        self, driver: StorageDriver
    ) -> None:
        await driver.put_content("/v/a", b"x")
        seen = [await driver.list_version("/v")]
        assert await driver.list_version("/v") == seen[0]  # nothing changed
        await driver.put_content("/v/b", b"x")
        seen.append(await driver.list_version("/v"))
        await driver.put_content("/elsewhere", b"x")
        await driver.move("/elsewhere", "/v/c")
        seen.append(await driver.list_version("/v"))
        await driver.delete("/v/a")
        seen.append(await driver.list_version("/v"))
        tokens = [v for v in seen if v is not None]  # None: the driver cannot tell now
        assert len(set(tokens)) == len(tokens), seen

    @async_test
    async def test_list_version_missing_and_file(self, driver: StorageDriver) -> None:
        await driver.put_content("/v/file", b"x")
        for path in ("/nope", "/v/nope", "/v/file"):
            with pytest.raises(PathNotFoundError):
                await driver.list_version(path)

    # -- move ---------------------------------------------------------------------------

    @async_test
    async def test_move_to_new_path(self, driver: StorageDriver) -> None:
        await driver.put_content("/m/src", BIG)
        await driver.move("/m/src", "/other/deeply/nested/dest")
        assert await driver.get_content("/other/deeply/nested/dest") == BIG
        with pytest.raises(PathNotFoundError):
            await driver.stat("/m/src")

    @async_test
    async def test_move_replaces_existing_dest(self, driver: StorageDriver) -> None:
        await driver.put_content("/m/src", b"new")
        await driver.put_content("/m/dest", b"old and longer")
        await driver.move("/m/src", "/m/dest")
        assert await driver.get_content("/m/dest") == b"new"
        assert await driver.list("/m") == ["/m/dest"]

    @async_test
    async def test_move_missing_source(self, driver: StorageDriver) -> None:
        await driver.put_content("/m/dest", b"untouched")
        with pytest.raises(PathNotFoundError) as info:
            await driver.move("/m/nope", "/m/dest")
        assert info.value.path == "/m/nope"
        with pytest.raises(PathNotFoundError):
            await driver.move("/m/nope", "/m/fresh")
        assert await driver.get_content("/m/dest") == b"untouched"
        assert await driver.list("/m") == ["/m/dest"]

    @async_test
    async def test_move_onto_itself_keeps_the_file(self, driver: StorageDriver) -> None:
        # rename(2) of a path onto itself is a no-op; it must not lose the file.
        await driver.put_content("/m/same", b"precious")
        await driver.move("/m/same", "/m/same")
        assert await driver.get_content("/m/same") == b"precious"

    # -- delete -------------------------------------------------------------------------

    @async_test
    async def test_delete_file(self, driver: StorageDriver) -> None:
        await driver.put_content("/d/a", b"a")
        await driver.put_content("/d/b", b"b")
        await driver.delete("/d/a")
        with pytest.raises(PathNotFoundError):
            await driver.get_content("/d/a")
        assert await driver.list("/d") == ["/d/b"]
        assert await driver.get_content("/d/b") == b"b"

    @async_test
    async def test_delete_tree(self, driver: StorageDriver) -> None:
        doomed = ["/d/t/f", "/d/t/x/y/z", "/d/t/x/w", "/d/t/big"]
        kept = ["/d/tt", "/d/t-2/f", "/d/t.x", "/d/other/t/f"]
        for path in doomed:
            await driver.put_content(path, BIG if path.endswith("big") else b"x")
        for path in kept:
            await driver.put_content(path, b"kept")
        await driver.delete("/d/t")
        for path in [*doomed, "/d/t/x", "/d/t"]:
            with pytest.raises(PathNotFoundError):
                await driver.stat(path)
        with pytest.raises(PathNotFoundError):
            await driver.list("/d/t")
        assert await tree(driver) == dict.fromkeys(kept, b"kept")

    @async_test
    async def test_delete_missing(self, driver: StorageDriver) -> None:
        await driver.put_content("/d/f", b"x")
        for missing in ("/nope", "/d/nope", "/d/f/child", "/d/f-"):
            with pytest.raises(PathNotFoundError):
                await driver.delete(missing)
        await driver.delete("/d/f")
        with pytest.raises(PathNotFoundError):
            await driver.delete("/d/f")

    # -- touch --------------------------------------------------------------------------

    @async_test
    async def test_touch_updates_mtime(self, driver: StorageDriver) -> None:
        await driver.put_content("/t/f", b"same")
        first = (await driver.stat("/t/f")).modified
        await asyncio.sleep(0.05)
        before = time.time()
        await driver.touch("/t/f")
        info = await driver.stat("/t/f")
        assert info.modified > first
        assert info.modified >= before - 0.02
        assert info.size == 4
        assert await driver.get_content("/t/f") == b"same"

    @async_test
    async def test_touch_missing(self, driver: StorageDriver) -> None:
        await driver.put_content("/t/f", b"x")
        for missing in ("/nope", "/t/nope", "/t/f/child"):
            with pytest.raises(PathNotFoundError):
                await driver.touch(missing)
        with pytest.raises(PathNotFoundError):
            await driver.stat("/t/nope")

    # -- paths --------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", BAD_PATHS)
    @async_test
    async def test_invalid_path_rejected_everywhere(self, driver: StorageDriver, bad: str) -> None:
        await driver.put_content("/ok/src", b"keep")
        with pytest.raises(InvalidPathError):
            await driver.get_content(bad)
        with pytest.raises(InvalidPathError):
            await driver.put_content(bad, b"x")
        with pytest.raises(InvalidPathError):
            await read_all(driver, bad)
        with pytest.raises(InvalidPathError):
            await driver.writer(bad)
        with pytest.raises(InvalidPathError):
            await driver.writer(bad, append=True)
        with pytest.raises(InvalidPathError):
            await driver.stat(bad)
        with pytest.raises(InvalidPathError):
            await driver.list(bad)
        with pytest.raises(InvalidPathError):
            await driver.move(bad, "/ok/dest")
        with pytest.raises(InvalidPathError):
            await driver.move("/ok/src", bad)
        with pytest.raises(InvalidPathError):
            await driver.delete(bad)
        with pytest.raises(InvalidPathError):
            await driver.touch(bad)
        assert await tree(driver) == {"/ok/src": b"keep"}

    @async_test
    async def test_root_is_not_a_file(self, driver: StorageDriver) -> None:
        await driver.put_content("/keep", b"x")
        with pytest.raises(InvalidPathError):
            await driver.put_content("/", b"x")
        with pytest.raises(InvalidPathError):
            await driver.get_content("/")
        with pytest.raises(InvalidPathError):
            await driver.writer("/")
        with pytest.raises(InvalidPathError):
            await driver.delete("/")
        with pytest.raises(InvalidPathError):
            await driver.move("/", "/elsewhere")
        with pytest.raises(InvalidPathError):
            await driver.touch("/")
        assert await driver.list("/") == ["/keep"]

    @async_test
    async def test_unusual_but_valid_names(self, driver: StorageDriver) -> None:
        names = ["/.hidden", "/a..b", "/...", "/-", "/_", "/A-Z_a.z-0.9", "/x/.y/..z/-_"]
        for path in names:
            await driver.put_content(path, path.encode())
        for path in names:
            assert await driver.get_content(path) == path.encode()
        assert await tree(driver) == {p: p.encode() for p in names}

    @async_test
    async def test_many_components(self, driver: StorageDriver) -> None:
        parts = [f"c{i:03d}-{'x' * 4}" for i in range(60)]
        path = "/" + "/".join(parts)
        await driver.put_content(path, b"deep")
        assert await driver.get_content(path) == b"deep"
        for depth in range(len(parts)):
            parent = "/" + "/".join(parts[:depth]) if depth else "/"
            child = "/" + "/".join(parts[: depth + 1])
            assert await driver.list(parent) == [child]
        sibling = path.rsplit("/", 1)[0] + "/sibling"
        w = await driver.writer(sibling)
        await w.write(b"w")
        await w.commit()
        assert await driver.get_content(sibling) == b"w"
        await driver.move(path, path + "-moved")
        assert await driver.get_content(path + "-moved") == b"deep"
        await driver.delete("/" + parts[0])
        with pytest.raises(PathNotFoundError):
            await driver.stat("/" + parts[0])
        assert await tree(driver) == {}

    @async_test
    async def test_long_component(self, driver: StorageDriver) -> None:
        # 255 bytes is NAME_MAX on Linux: the longest name a local filesystem stores.
        long_name = "n" * 255
        await driver.put_content(f"/long/{long_name}", b"x")
        assert await driver.get_content(f"/long/{long_name}") == b"x"
        await driver.put_content(f"/long/{long_name}", b"y")
        assert await driver.list("/long") == [f"/long/{long_name}"]
        await driver.delete(f"/long/{long_name}")
        await driver.put_content(f"/long/{long_name}/child", b"z")
        await driver.delete(f"/long/{long_name}")
        with pytest.raises(PathNotFoundError):
            await driver.stat(f"/long/{long_name}")

    @async_test
    async def test_file_and_directory_cannot_share_a_path(self, driver: StorageDriver) -> None:
        await driver.put_content("/f/file", b"file")
        await driver.put_content("/f/dir/child", b"child")
        with pytest.raises((StorageError, OSError)):
            await driver.put_content("/f/file/child", b"x")
        with pytest.raises((StorageError, OSError)):
            await driver.writer("/f/file/child2")
        with pytest.raises((StorageError, OSError)):
            await driver.put_content("/f/dir", b"x")
        assert await tree(driver) == {"/f/file": b"file", "/f/dir/child": b"child"}
