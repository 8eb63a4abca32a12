"""The package build (torch_plugin/setup.py): it bundles a prebuilt libvramcache.so, says what
to run when there is none, and the bundled copy is the one an installed package loads."""

import filecmp
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from conftest import PLUGIN, load_or_skip
from vramcache import _library


@pytest.fixture(scope="module")
def setup_module_under_test():
    spec = importlib.util.spec_from_file_location("vramcache_setup", PLUGIN / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: defines the finder, runs no setup()
    return module


def test_missing_library_tells_what_to_run(setup_module_under_test, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"bash \.ci/quickstart"):
        setup_module_under_test.find_prebuilt_library(environ={}, repo=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not name an existing file"):
        setup_module_under_test.find_prebuilt_library(
            environ={"VRAMCACHE_LIBRARY": str(tmp_path / "nope.so")}, repo=tmp_path)


def test_release_build_is_found(setup_module_under_test, tmp_path):
    library = tmp_path / "build" / "release" / "allocator" / "libvramcache.so"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"")
    assert setup_module_under_test.find_prebuilt_library(environ={}, repo=tmp_path) == library


def copy_of_the_source(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(PLUGIN, source, ignore=shutil.ignore_patterns(
        "*.so", "__pycache__", "*.egg-info", "build"))
    return source


def test_build_bundles_the_library_and_the_package_loads_it(tmp_path):
    load_or_skip()
    # Staged as a GPU machine would get it: the library with an Abseil library beside it.
    staged = tmp_path / "staged"
    staged.mkdir()
    library = staged / "libvramcache.so"
    shutil.copy2(_library.library_path(), library)
    (staged / "libabsl_example.so.1").write_bytes(b"stand-in")
    source, out = copy_of_the_source(tmp_path), tmp_path / "lib"
    env = dict(os.environ, VRAMCACHE_LIBRARY=str(library))
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)],
                           cwd=source, env=env, capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    bundled = out / "vramcache" / "libvramcache.so"
    assert filecmp.cmp(bundled, library, shallow=False)
    assert (out / "vramcache" / "libabsl_example.so.1").read_bytes() == b"stand-in"

    env = {k: v for k, v in os.environ.items() if k != "VRAMCACHE_LIBRARY"}
    env.update(PYTHONPATH=str(out), VRAMCACHE_CONF="device:sim")
    check = subprocess.run(
        [sys.executable, "-c", "import vramcache; print(vramcache.library_path()); "
         "p = vramcache.caching_allocator_alloc(4096); print(vramcache.memory_allocated())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == [str(bundled.resolve()), "4096"]


def test_build_without_library_fails_clearly(tmp_path):
    source = copy_of_the_source(tmp_path)
    env = dict(os.environ, VRAMCACHE_LIBRARY=str(tmp_path / "absent.so"))
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib",
                            str(tmp_path / "lib")], cwd=source, env=env, capture_output=True,
                           text=True, timeout=120)
    assert build.returncode != 0
    assert "VRAMCACHE_LIBRARY" in build.stderr and "absent.so" in build.stderr


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
