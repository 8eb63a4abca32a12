"""The package build (torch_plugin/pyproject.toml, scikit-build-core) and how the package
finds its library: tests/packaging/pip_install_check.sh does the whole `pip install` in a fresh
virtual environment; these check what it relies on, quickly."""

import os
import subprocess
import sys

import pytest

from conftest import PLUGIN
from vramcache import _torch_versions

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = pytest.importorskip("tomli")


def test_torch_extra_is_the_supported_range():
    # pyproject.toml cannot read _torch_versions.py, so this keeps its `torch` extra equal to it.
    with open(PLUGIN / "pyproject.toml", "rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["torch"]
    oldest, newest = _torch_versions.OLDEST, _torch_versions.NEWEST
    assert extra == [f"torch>={oldest[0]}.{oldest[1]},<{newest[0]}.{newest[1] + 1}"]


def load_in_subprocess(library_env, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "VRAMCACHE_LIBRARY"}
    env.update(PYTHONPATH=str(PLUGIN), VRAMCACHE_LIBRARY=library_env)
    return subprocess.run(
        [sys.executable, "-c", "import vramcache\ntry:\n    vramcache.memory_allocated()\n"
         "except vramcache.VramcacheError as e:\n    print(type(e).__name__, e)\n"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_library_path_errors_are_clear(tmp_path):
    missing = load_in_subprocess(str(tmp_path / "missing.so"), tmp_path)
    assert missing.stdout.startswith("LibraryNotFoundError vramcache: VRAMCACHE_LIBRARY=")
    assert "does not name an existing file" in missing.stdout
    not_a_library = tmp_path / "libvramcache.so"
    not_a_library.write_text("not an ELF file")
    broken = load_in_subprocess(str(not_a_library), tmp_path)
    assert broken.stdout.startswith(f"LibraryLoadError vramcache: cannot load {not_a_library}")
