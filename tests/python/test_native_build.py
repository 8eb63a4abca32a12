"""The native adapter's build: the adapter pip bundled is used only for the PyTorch release it
was built for, and the CUDA runtime comes from a toolkit first, else NVIDIA's pip wheels beside
torch (CUDA 13 and CUDA 12 layouts); neither is an error naming both. No compiler runs here."""

import types
from pathlib import Path

import pytest

from vramcache import _native


def runtime(folder: Path, lib_dir: str, libraries) -> Path:
    (folder / "include").mkdir(parents=True)
    (folder / "include" / "cuda_runtime_api.h").write_text("")
    (folder / lib_dir).mkdir()
    for name in libraries:
        (folder / lib_dir / name).write_text("")
    return folder


@pytest.fixture
def site(tmp_path) -> Path:
    (tmp_path / "site" / "torch").mkdir(parents=True)
    return tmp_path / "site"


def test_toolkit_first(site, tmp_path):
    toolkit = runtime(tmp_path / "cuda", "lib64", ["libcudart.so", "libcudart.so.13"])
    runtime(site / "nvidia" / "cu13", "lib", ["libcudart.so.13"])
    found = _native.find_cuda_runtime(str(toolkit), site / "torch")
    assert found == _native.CudaRuntime(toolkit / "include", toolkit / "lib64", "libcudart.so")


def test_pip_wheels_without_a_toolkit(site, tmp_path):
    wheel = runtime(site / "nvidia" / "cu13", "lib", ["libcudart.so.13"])
    for cuda_home in (None, str(tmp_path / "no-toolkit-here")):
        found = _native.find_cuda_runtime(cuda_home, site / "torch")
        assert found == _native.CudaRuntime(wheel / "include", wheel / "lib", "libcudart.so.13")
        cpp_extension = types.SimpleNamespace(TORCH_LIB_PATH="/torch/lib")
        flags = _native._link_flags(cpp_extension, Path("/x/libvramcache.so"), found)  # noqa: SLF001
        assert f"-L{wheel / 'lib'}" in flags and "-l:libcudart.so.13" in flags


def test_cuda_12_wheel_layout(site):
    wheel = runtime(site / "nvidia" / "cuda_runtime", "lib", ["libcudart.so.12"])
    assert _native.find_cuda_runtime(None, site / "torch").lib_dir == wheel / "lib"


def test_headers_without_the_library_are_not_enough(site):
    runtime(site / "nvidia" / "cu13", "lib", [])
    with pytest.raises(_native.NativeUnavailable, match="CUDA_HOME unset.*nvidia/cu"):
        _native.find_cuda_runtime(None, site / "torch")


@pytest.mark.parametrize("running, used", [("2.15.0+cu132", True), ("2.15.0", True),
                                           ("2.15.1", False), ("2.14.1+cu130", False)])
def test_bundled_adapter_only_for_the_release_it_was_built_for(monkeypatch, tmp_path, running,
                                                               used):
    monkeypatch.setattr(_native, "_package_dir", lambda: tmp_path)
    assert _native.bundled_adapter(running) is None  # nothing bundled
    (tmp_path / _native.BUNDLED_ADAPTER).write_bytes(b"")
    (tmp_path / _native.BUNDLED_ADAPTER_VERSION).write_text("2.15.0\n")
    expected = tmp_path / _native.BUNDLED_ADAPTER if used else None
    assert _native.bundled_adapter(running) == expected
