#!/usr/bin/env python3
"""Fetches what the native adapter's check needs from a PyTorch wheel on PyPI, without
downloading the wheel: PyTorch's headers (torch/include/**), libc10.so, libc10_cuda.so and
torch/version.py, read through HTTP range requests from the wheel's zip central directory.
A whole wheel is over 500 MB; this reads about a tenth of it.

    tests/torch_versions/fetch_torch.py 2.13        # newest 2.13.x; prints the torch directory
    tests/torch_versions/fetch_torch.py 2.12.0      # exactly that release

The files go to $VRAMCACHE_TORCH_CACHE (default ~/.cache/vramcache)/torch-<version>/torch,
laid out as in an installed torch (include/, lib/), which is what
tests/gpu/check_native_compiles.sh takes. A complete copy is reused without any network access.
"""

import argparse
import http.client
import json
import os
import re
import shutil
import struct
import sys
import time
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

INDEX = "https://pypi.org/simple/torch/"
PLATFORM = "manylinux_2_28_x86_64"
WANTED_FILES = ("torch/lib/libc10.so", "torch/lib/libc10_cuda.so", "torch/version.py")
WANTED_PREFIX = "torch/include/"
COMPLETE_MARK = ".complete"
# Neighbouring members are fetched in one request when the gap between them is smaller than
# this (a request costs more than reading a few hundred kilobytes more), up to MAX_REQUEST.
MERGE_GAP = 512 << 10
MAX_REQUEST = 48 << 20


class FetchError(RuntimeError):
    """The release or its wheel cannot be found or read."""


class Member(NamedTuple):
    name: str
    method: int  # 0 stored, 8 deflated
    compressed_size: int
    size: int
    header_offset: int


def cache_root() -> Path:
    return Path(os.environ.get("VRAMCACHE_TORCH_CACHE", Path.home() / ".cache" / "vramcache"))


def index_files() -> List[dict]:
    request = urllib.request.Request(
        INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["files"]


def resolve(wanted: str, files: List[dict]) -> str:
    """The release to fetch: `wanted` itself (major.minor.patch) or the newest patch of a
    major.minor, among the releases that have a wheel for PLATFORM."""
    if not re.fullmatch(r"\d+\.\d+(\.\d+)?", wanted):
        raise FetchError(f"fetch_torch: {wanted!r} is not a release (2.13 or 2.13.0)")
    found = set()
    for f in files:
        match = re.match(r"torch-(\d+\.\d+\.\d+)-", f["filename"])
        if match and f["filename"].endswith(PLATFORM + ".whl") and not f.get("yanked"):
            found.add(match.group(1))
    if wanted in found:
        return wanted
    patches = [v for v in found if v.startswith(wanted + ".") and wanted.count(".") == 1]
    if not patches:
        raise FetchError(f"fetch_torch: PyPI has no torch {wanted} wheel for {PLATFORM}")
    return max(patches, key=lambda v: tuple(int(p) for p in v.split(".")))


def wheel_url(version: str, files: List[dict]) -> str:
    """A CPython (not free-threaded) wheel of `version` for PLATFORM: the headers and c10
    libraries are the same in each, so this interpreter's tag is only a preference."""
    ours = f"cp{sys.version_info.major}{sys.version_info.minor}"
    candidates = [f for f in files
                  if re.fullmatch(rf"torch-{re.escape(version)}-(cp\d+)-\1-{PLATFORM}\.whl",
                                  f["filename"])]
    if not candidates:
        raise FetchError(f"fetch_torch: no CPython {PLATFORM} wheel of torch {version}")
    candidates.sort(key=lambda f: f"-{ours}-" not in f["filename"])
    return candidates[0]["url"]


class RangeReader:
    """Byte ranges of one URL over one kept-alive HTTPS connection."""

    def __init__(self, url: str):
        self.url = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPSConnection(self.url.netloc, timeout=120)
        self.requests = 0
        self.bytes_read = 0
        self.size = self._total_size()

    def _get(self, headers: Dict[str, str]) -> Tuple[int, Dict[str, str], bytes]:
        for attempt in range(3):
            try:
                self.connection.request("GET", self.url.path, headers=headers)
                response = self.connection.getresponse()
                return response.status, dict(response.getheaders()), response.read()
            except (http.client.HTTPException, OSError):
                if attempt == 2:
                    raise
                self.connection.close()
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def _total_size(self) -> int:
        status, headers, _ = self._get({"Range": "bytes=0-0"})
        content_range = {k.lower(): v for k, v in headers.items()}.get("content-range", "")
        if status != 206 or "/" not in content_range:
            raise FetchError(f"fetch_torch: {self.url.netloc} does not serve byte ranges "
                             f"(HTTP {status}); cannot read the wheel in parts")
        return int(content_range.rsplit("/", 1)[1])

    def read(self, start: int, length: int) -> bytes:
        status, _, body = self._get({"Range": f"bytes={start}-{start + length - 1}"})
        if status != 206 or len(body) != length:
            raise FetchError(f"fetch_torch: range {start}+{length}: HTTP {status}, "
                             f"{len(body)} bytes")
        self.requests += 1
        self.bytes_read += length
        return body


def central_directory(reader: RangeReader) -> bytes:
    """The zip's central directory (ZIP64 end records understood)."""
    tail_length = min(reader.size, 1 << 16)
    tail = reader.read(reader.size - tail_length, tail_length)
    end = tail.rfind(b"PK\x05\x06")
    if end < 0:
        raise FetchError("fetch_torch: no end-of-central-directory record: not a zip file")
    size, offset = struct.unpack_from("<II", tail, end + 12)
    if offset == 0xFFFFFFFF or size == 0xFFFFFFFF:
        locator = tail.rfind(b"PK\x06\x07", 0, end)
        if locator < 0:
            raise FetchError("fetch_torch: ZIP64 wheel without a ZIP64 locator")
        (record_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        record = reader.read(record_offset, 56)
        size, offset = struct.unpack_from("<QQ", record, 40)
    return reader.read(offset, size)


def members(directory: bytes) -> List[Member]:
    found, at = [], 0
    while directory.startswith(b"PK\x01\x02", at):
        (method, compressed, size, name_length, extra_length, comment_length,
         header_offset) = struct.unpack_from("<10xH8xIIHHH8xI", directory, at)
        name = directory[at + 46:at + 46 + name_length].decode("utf-8")
        extra = directory[at + 46 + name_length:at + 46 + name_length + extra_length]
        if 0xFFFFFFFF in (compressed, size, header_offset):
            compressed, size, header_offset = _zip64_sizes(extra, compressed, size,
                                                           header_offset)
        found.append(Member(name, method, compressed, size, header_offset))
        at += 46 + name_length + extra_length + comment_length
    return found


def _zip64_sizes(extra: bytes, compressed: int, size: int, offset: int) -> Tuple[int, int, int]:
    at = 0
    while at + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, at)
        if tag == 1:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            if size == 0xFFFFFFFF:
                size = values.pop(0)
            if compressed == 0xFFFFFFFF:
                compressed = values.pop(0)
            if offset == 0xFFFFFFFF:
                offset = values.pop(0)
            break
        at += 4 + length
    return compressed, size, offset


def wanted(member: Member) -> bool:
    return (member.name in WANTED_FILES or
            (member.name.startswith(WANTED_PREFIX) and not member.name.endswith("/")))


def batches(chosen: List[Member], all_members: List[Member]) -> List[List[Member]]:
    """Chosen members grouped into runs read by one request each. A member ends where the next
    member of the archive begins (its local header's length is known only once read)."""
    starts = sorted({m.header_offset for m in all_members})
    next_start = {a: b for a, b in zip(starts, starts[1:])}
    groups: List[List[Member]] = []
    for member in sorted(chosen, key=lambda m: m.header_offset):
        if groups:
            first, last = groups[-1][0], groups[-1][-1]
            gap = member.header_offset - next_start[last.header_offset]
            span = member.header_offset + member.compressed_size - first.header_offset
            if gap < MERGE_GAP and span < MAX_REQUEST:
                groups[-1].append(member)
                continue
        groups.append([member])
    return groups


def extract(reader: RangeReader, group: List[Member], archive_end: Dict[int, int],
            into: Path) -> None:
    start = group[0].header_offset
    stop = archive_end[group[-1].header_offset]
    data = reader.read(start, stop - start)
    for member in group:
        at = member.header_offset - start
        if data[at:at + 4] != b"PK\x03\x04":
            raise FetchError(f"fetch_torch: {member.name}: no local header where the central "
                             f"directory says")
        name_length, extra_length = struct.unpack_from("<HH", data, at + 26)
        begin = at + 30 + name_length + extra_length
        raw = data[begin:begin + member.compressed_size]
        if member.method == 0:
            content = raw
        elif member.method == 8:
            content = zlib.decompressobj(-15).decompress(raw)
        else:
            raise FetchError(f"fetch_torch: {member.name}: zip method {member.method}")
        if len(content) != member.size:
            raise FetchError(f"fetch_torch: {member.name}: {len(content)} bytes, "
                             f"expected {member.size}")
        target = into / member.name
        if not target.resolve().is_relative_to(into.resolve()):
            raise FetchError(f"fetch_torch: {member.name} points outside the cache")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def fetch(wanted_release: str, log=sys.stderr) -> Path:
    """The torch directory of `wanted_release`, fetched now unless already in the cache."""
    exact = wanted_release if wanted_release.count(".") == 2 else None
    if exact:
        cached = cache_root() / f"torch-{exact}"
        if (cached / COMPLETE_MARK).is_file():
            return cached / "torch"
    files = index_files()
    version = resolve(wanted_release, files)
    target = cache_root() / f"torch-{version}"
    if (target / COMPLETE_MARK).is_file():
        return target / "torch"
    started = time.monotonic()
    url = wheel_url(version, files)
    reader = RangeReader(url)
    every = members(central_directory(reader))
    chosen = [m for m in every if wanted(m)]
    missing = set(WANTED_FILES) - {m.name for m in chosen}
    if missing:
        raise FetchError(f"fetch_torch: torch {version}'s wheel lacks {', '.join(missing)}")
    starts = sorted(m.header_offset for m in every)
    archive_end = dict(zip(starts, starts[1:] + [reader.size]))
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for group in batches(chosen, every):
        extract(reader, group, archive_end, partial)
    (partial / COMPLETE_MARK).write_text(f"{url}\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    print(f"fetch_torch: torch {version}: {len(chosen)} files, {reader.bytes_read >> 20} MiB "
          f"of a {reader.size >> 20} MiB wheel in {reader.requests} requests, "
          f"{time.monotonic() - started:.0f}s", file=log)
    return target / "torch"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release", help="major.minor (newest patch) or major.minor.patch")
    args = parser.parse_args()
    try:
        print(fetch(args.release))
    except (FetchError, OSError) as e:
        print(e if isinstance(e, FetchError) else f"fetch_torch: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
