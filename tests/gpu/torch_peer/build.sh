#!/usr/bin/env bash
# Builds bench/gpu/torch_peer_bench.cc (PyTorch's native caching allocator as a peer of
# vramcache-gpu-bench) against the installed torch: its headers, libc10 and libc10_cuda, plus the
# CUDA headers. Run by tests/gpu/run.sh on the GPU machine, where that torch is; it works on any
# machine with a CUDA build of torch (the CPU wheel has no libc10_cuda.so: then it says so).
#
# Usage: tests/gpu/torch_peer/build.sh OUT   (writes OUT/torch-peer-bench)
#   TORCH_DIR: the torch package directory (default: python3's); CUDA_HOME (default
#   /usr/local/cuda, else the nvidia/cu*/ headers pip installed beside torch); CXX (default g++).
# Exit status: 0 built, 1 failed, 3 cannot be built here (no torch, no CUDA torch or headers).
set -uo pipefail
cd "$(dirname "$0")/../../.."
out=${1:?usage: $0 OUT}
mkdir -p "$out"

torch_dir=${TORCH_DIR:-$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' \
  2>/dev/null)}
if [ -z "$torch_dir" ] || [ ! -f "$torch_dir/include/c10/cuda/CUDACachingAllocator.h" ]; then
  echo "torch_peer/build.sh: no torch with C++ headers (TORCH_DIR='$torch_dir')" >&2
  exit 3
fi
if [ ! -f "$torch_dir/lib/libc10_cuda.so" ]; then
  echo "torch_peer/build.sh: $torch_dir/lib has no libc10_cuda.so (a CPU-only torch)" >&2
  exit 3
fi
includes=()
for candidate in "${CUDA_HOME:-/usr/local/cuda}/include" "$torch_dir"/../nvidia/cu*/include \
  "$torch_dir"/../nvidia/cuda_runtime/include; do
  if [ -f "$candidate/cuda_runtime_api.h" ]; then includes+=(-isystem "$candidate"); break; fi
done
if [ "${#includes[@]}" -eq 0 ]; then
  echo "torch_peer/build.sh: no CUDA headers (cuda_runtime_api.h); set CUDA_HOME" >&2
  exit 3
fi
# libcudart: the one torch loads (pip's nvidia package), else the toolkit's.
cudart=()
for candidate in "$torch_dir"/../nvidia/cu*/lib "$torch_dir"/../nvidia/cuda_runtime/lib \
  "${CUDA_HOME:-/usr/local/cuda}/lib64"; do
  if compgen -G "$candidate/libcudart.so*" >/dev/null; then
    lib=$(cd "$candidate" && ls libcudart.so* | sort | head -1)
    cudart=(-L"$candidate" "-l:$lib" -Wl,-rpath,"$(cd "$candidate" && pwd)")
    break
  fi
done

# libtorch_cuda is linked (not called) so that loading it registers the CUDA hooks c10 asks
# for (hasPrimaryContext), which the caching allocator's event paths need.
"${CXX:-g++}" -std=c++17 -O2 -DNDEBUG -D_GLIBCXX_USE_CXX11_ABI=1 -pthread \
  -isystem "$torch_dir/include" "${includes[@]}" bench/gpu/torch_peer_bench.cc \
  -o "$out/torch-peer-bench" -L"$torch_dir/lib" \
  -Wl,--no-as-needed -ltorch_cuda -Wl,--as-needed -lc10_cuda -lc10 "${cudart[@]}" \
  -Wl,-rpath,"$(cd "$torch_dir/lib" && pwd)" || exit 1
echo "torch_peer/build.sh: built $out/torch-peer-bench against $torch_dir"
