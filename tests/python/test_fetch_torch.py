"""tests/torch_versions/fetch_torch.py's zip reading, against wheels made here and read through
a stand-in for its HTTP range reader: only the wanted members are extracted, byte for byte,
whether neighbours share a request or not, and with ZIP64 local headers (whose extra field
makes a local header longer than the central directory says)."""

import importlib.util
import io
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location(
    "fetch_torch", REPO / "tests" / "torch_versions" / "fetch_torch.py")
fetch_torch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fetch_torch)

MEMBERS = {
    "torch/__init__.py": b"# not wanted\n" * 50,
    "torch/include/c10/core/Allocator.h": b"#pragma once\n" + b"struct A {};\n" * 400,
    "torch/lib/libtorch_cuda.so": bytes(range(256)) * 300,  # not wanted, between wanted ones
    "torch/lib/libc10.so": b"\x7fELF c10" + bytes(range(256)) * 20,
    "torch/include/torch/headeronly/version.h": b"#define TORCH_VERSION_MINOR 13\n",
    "torch/lib/libc10_cuda.so": b"\x7fELF c10_cuda" * 100,
    "torch/version.py": b"__version__ = '2.13.0'\n",
    "torch-2.13.0.dist-info/RECORD": b"...",
}


class BytesReader:
    """RangeReader's interface over bytes in memory, counting requests."""

    def __init__(self, data: bytes):
        self.data, self.size, self.requests = data, len(data), 0

    def read(self, start: int, length: int) -> bytes:
        self.requests += 1
        assert 0 <= start and start + length <= self.size
        return self.data[start:start + length]


def wheel(force_zip64=False, stored_one=False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in MEMBERS.items():
            method = zipfile.ZIP_STORED if stored_one and name.endswith("version.py") else None
            info = zipfile.ZipInfo(name)
            info.compress_type = method if method is not None else zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=force_zip64) as f:
                f.write(content)
    return buffer.getvalue()


def extract_all(data: bytes, into: Path) -> BytesReader:
    reader = BytesReader(data)
    every = fetch_torch.members(fetch_torch.central_directory(reader))
    chosen = [m for m in every if fetch_torch.wanted(m)]
    starts = sorted(m.header_offset for m in every)
    archive_end = dict(zip(starts, starts[1:] + [reader.size]))
    for group in fetch_torch.batches(chosen, every):
        fetch_torch.extract(reader, group, archive_end, into)
    return reader


def extracted(root: Path):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


WANTED = {name: content for name, content in MEMBERS.items()
          if name.startswith("torch/include/") or name in fetch_torch.WANTED_FILES}


@pytest.mark.parametrize("force_zip64", [False, True])
def test_only_wanted_members_byte_for_byte(tmp_path, force_zip64):
    extract_all(wheel(force_zip64=force_zip64, stored_one=True), tmp_path)
    assert extracted(tmp_path) == WANTED


def test_neighbours_share_requests_unless_far_apart(tmp_path, monkeypatch):
    data = wheel()
    merged = extract_all(data, tmp_path / "merged")
    monkeypatch.setattr(fetch_torch, "MERGE_GAP", 0)
    separate = extract_all(data, tmp_path / "separate")
    assert extracted(tmp_path / "merged") == extracted(tmp_path / "separate") == WANTED
    # Two reads for the directory, then one per run of wanted members.
    assert merged.requests == 2 + 1
    assert separate.requests > merged.requests


def test_not_a_zip_is_refused():
    with pytest.raises(fetch_torch.FetchError, match="not a zip file"):
        fetch_torch.central_directory(BytesReader(b"<html>not found</html>" * 10))


def test_release_resolution():
    files = [{"filename": f"torch-{v}-cp311-cp311-manylinux_2_28_x86_64.whl", "url": v}
             for v in ("2.12.0", "2.12.1", "2.13.0")]
    files.append({"filename": "torch-2.12.2-cp311-cp311-win_amd64.whl", "url": "windows"})
    assert fetch_torch.resolve("2.12", files) == "2.12.1"
    assert fetch_torch.resolve("2.12.0", files) == "2.12.0"
    with pytest.raises(fetch_torch.FetchError, match="no torch 2.16"):
        fetch_torch.resolve("2.16", files)
    with pytest.raises(fetch_torch.FetchError, match="not a release"):
        fetch_torch.resolve("latest", files)
