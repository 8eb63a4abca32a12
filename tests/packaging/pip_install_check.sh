#!/usr/bin/env bash
# The README's install from nothing: copies the source tree (tracked and untracked files, no
# build/), runs `pip install ./torch_plugin` in a fresh virtual environment (which compiles
# libvramcache.so through CMake), then, from outside the source tree, checks that the installed
# package loads its own copy of the library and allocates and frees through the C ABI on the
# simulated device. Prints how long the install took. CMAKE_BUILD_PARALLEL_LEVEL: build jobs
# (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src"
git ls-files -z -co --exclude-standard | grep -zv '^build/' | tar --null -T - -cf - |
  tar -C "$work/src" -xf -
python3 -m venv "$work/venv"

start=$(date +%s)
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  "$work/venv/bin/python" -m pip install -q "$work/src/torch_plugin"
echo "pip_install_check: pip install ./torch_plugin took $(($(date +%s) - start))s"

cd "$work"
env -u VRAMCACHE_LIBRARY -u VRAMCACHE_CONF -u PYTORCH_ALLOC_CONF -u PYTORCH_CUDA_ALLOC_CONF \
  -u PYTHONPATH "$work/venv/bin/python" - <<'PY'
import sysconfig
from pathlib import Path

import vramcache
from vramcache import _library, _native

site = Path(sysconfig.get_paths()["platlib"]).resolve()
package = Path(vramcache.__file__).resolve().parent
assert package.parent == site, f"vramcache imported from {package}, not from {site}"
assert vramcache.library_path() == package / "libvramcache.so", vramcache.library_path()
assert _native.source_dir() == package / "native" and _native.header_dir() == package / "native"

lib = _library.load()
assert lib.vramcache_configure(b"device:sim,sim_capacity:64MiB") == 0, _library.last_error()
ptr = lib.vramcache_malloc(1 << 20, 0, None)
assert ptr, _library.last_error()
assert vramcache.memory_allocated(0) == 1 << 20
lib.vramcache_free(ptr, 0, 0, None)
assert _library.last_error() == "" and vramcache.memory_allocated(0) == 0
print(f"pip_install_check: OK ({vramcache.library_path()})")
PY
