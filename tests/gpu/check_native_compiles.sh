#!/usr/bin/env bash
# Proves, on a machine without a GPU, that the native PyTorch adapter (torch_plugin/native)
# compiles against PyTorch's headers and links against c10, c10_cuda, the CUDA runtime and
# libvramcache.so with no undefined symbol; then builds and runs its self-check
# (adapter_check.cpp) on vramcache's simulated device.
#
# Usage: tests/gpu/check_native_compiles.sh [torch_dir]
#   torch_dir: the `torch` package directory (holding include/ and lib/); default: $TORCH_DIR,
#   else the installed torch's (python3 -c 'import torch'), else /tmp/torch211/torch (headers
#   and libc10*.so unzipped from the torch wheel). Without one it prints why and exits 0 (a
#   skip), so it can run anywhere. VRAMCACHE_LIBRARY: the libvramcache.so to link (default: the
#   source tree's build/release, else build/gpu, else any build/*/allocator). CUDA_HOME: the
#   toolkit (default /usr/local/cuda), or the nvidia/cu13 folder of NVIDIA's pip wheels. Exit
#   status: 0 when everything compiled, linked and passed (or skipped), 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

skip() { echo "check_native_compiles: SKIP: $*"; exit 0; }
fail() { echo "check_native_compiles: FAIL: $*" >&2; exit 1; }

torch_dir=${1:-${TORCH_DIR:-}}
if [ -z "$torch_dir" ]; then
  torch_dir=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)
fi
[ -n "$torch_dir" ] || torch_dir=/tmp/torch211/torch
[ -f "$torch_dir/include/c10/cuda/CUDACachingAllocator.h" ] ||
  skip "no PyTorch headers (looked in $torch_dir/include)"
cuda_home=${CUDA_HOME:-/usr/local/cuda}
[ -f "$cuda_home/include/cuda_runtime_api.h" ] || skip "no CUDA toolkit in $cuda_home"

library=${VRAMCACHE_LIBRARY:-}
if [ -z "$library" ]; then
  for candidate in build/release/allocator/libvramcache.so build/gpu/allocator/libvramcache.so \
    build/*/allocator/libvramcache.so; do
    if [ -f "$candidate" ]; then library=$repo/$candidate; break; fi
  done
fi

# The release the headers are from picks the C++ standard (C++20 from 2.14 on), as
# torch_plugin/vramcache/_torch_versions.py says.
version_header=$torch_dir/include/torch/headeronly/version.h
[ -f "$version_header" ] || fail "no $version_header: PyTorch before 2.11 is not supported"
torch_version=$(awk '/#define TORCH_VERSION_(MAJOR|MINOR|PATCH) /{printf "%s%s", sep, $3; sep="."}' \
  "$version_header")
std=$(python3 "$repo/torch_plugin/vramcache/_torch_versions.py" --cxx-standard "$torch_version") ||
  fail "cannot read the PyTorch version from $version_header"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cxx=${CXX:-g++}
flags=(-std="$std" -O1 -fPIC -Wall -Wextra -Wpedantic -Werror -D_GLIBCXX_USE_CXX11_ABI=1
  -isystem "$torch_dir/include" -isystem "$torch_dir/include/torch/csrc/api/include"
  -isystem "$cuda_home/include" -I"$repo/torch_plugin/native" -I"$repo/allocator/api")
sources=(snapshot_from_c vramcache_torch_allocator install adapter_check)

start=$(date +%s)
# All at once: each file takes tens of seconds (PyTorch's headers), and CI runs this per release.
pids=()
for source in "${sources[@]}"; do
  "$cxx" "${flags[@]}" -c "$repo/torch_plugin/native/$source.cpp" -o "$out/$source.o" &
  pids+=($!)
done
for i in "${!sources[@]}"; do
  wait "${pids[$i]}" || fail "${sources[$i]}.cpp does not compile against $torch_dir/include"
done
elapsed() { echo "$(($(date +%s) - start))s"; }
echo "check_native_compiles: compiled ${#sources[@]} sources against PyTorch $torch_version" \
  "($std, $torch_dir) ($(elapsed))"

if [ ! -f "$torch_dir/lib/libc10.so" ] || [ ! -f "$torch_dir/lib/libc10_cuda.so" ]; then
  skip "compiled; no libc10.so / libc10_cuda.so in $torch_dir/lib to link against"
fi
[ -n "$library" ] && [ -f "$library" ] ||
  skip "compiled; libvramcache.so is not built (set VRAMCACHE_LIBRARY)"
cudart_dir=$cuda_home/lib64
[ -d "$cudart_dir" ] || cudart_dir=$cuda_home/lib
# By its file name: NVIDIA's pip wheels (CUDA_HOME=site-packages/nvidia/cu13) ship only the
# versioned libcudart.so.13, a toolkit also libcudart.so.
cudart=$(cd "$cudart_dir" 2>/dev/null && ls libcudart.so* 2>/dev/null | sort | head -1)
[ -n "$cudart" ] || fail "no libcudart.so* in $cudart_dir"
link=(-L"$torch_dir/lib" -lc10 -lc10_cuda -L"$cudart_dir" "-l:$cudart"
  -L"$(dirname "$library")" "-l:$(basename "$library")")
adapter_objects=("$out"/snapshot_from_c.o "$out"/vramcache_torch_allocator.o "$out"/install.o)
"$cxx" -shared -o "$out/libvramcache_torch.so" "${adapter_objects[@]}" -Wl,--no-undefined \
  -Wl,--allow-shlib-undefined "${link[@]}" ||
  fail "the adapter does not link (an undefined symbol above?)"
echo "check_native_compiles: libvramcache_torch.so links with no undefined symbol"

"$cxx" -o "$out/adapter_check" "$out/adapter_check.o" "${adapter_objects[@]}" "${link[@]}" \
  -Wl,-rpath,"$torch_dir/lib:$cudart_dir:$(dirname "$library")" -Wl,--allow-shlib-undefined ||
  fail "adapter_check does not link"
# The simulated device, whatever the environment says: the check must not need a GPU.
env -u VRAMCACHE_CONF -u PYTORCH_ALLOC_CONF -u PYTORCH_CUDA_ALLOC_CONF "$out/adapter_check" ||
  fail "adapter_check failed (see FAILED lines above)"
echo "check_native_compiles: OK ($(elapsed))"
