#!/usr/bin/env bash
# Builds, on this (CPU) machine, everything tests/gpu/run.sh runs on the lent GPU machine, which
# has CUDA but neither Abseil, GoogleTest nor Benchmark packages and no network:
#   1. a Release build in build/gpu with Abseil and cudart linked statically;
#   2. libbenchmark.so* copied into build/gpu/lib (run.sh puts that directory on
#      LD_LIBRARY_PATH);
#   3. a check that no binary needs libabsl*, libcudart or libcuda at load time;
#   4. the runnable files alone staged into build/gpu-carry (executables, lib/), because the
#      device machine takes at most 64 MiB of carried files and build/gpu holds far more;
#   5. compute-sanitizer (tests/gpu/stage_compute_sanitizer.py: PyPI's wheel, cached in
#      build/tools) staged as build/gpu-carry/tools/compute-sanitizer.tar.xz, when online.
# Usage: tests/gpu/build.sh [ninja targets...]   (default: every executable under tests/ and
# bench/; JOBS=n builds with n jobs, default 1). A target that fails to build does not stop the
# others (ninja -k 0): what did build is staged, and the script exits 1 at the end.
# STAGE_SANITIZER=0 leaves compute-sanitizer out of the carry.
# Then carry build/gpu-carry and run tests/gpu/run.sh from the repository root there.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=build/gpu
stage=build/gpu-carry
carry_limit_bytes=$((60 << 20))  # the device machine's 64 MiB, less room for the sources

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-90}" -DVRAMCACHE_STATIC_DEPS=ON \
  -DVRAMCACHE_BUILD_TESTS=ON -DVRAMCACHE_BUILD_BENCH=ON >/dev/null
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(ninja -C "$build" -t targets all |
    sed -n 's/^\(\(tests\|bench\)\/[^:[]*\): CXX_EXECUTABLE_LINKER.*/\1/p' | sort -u)
  targets+=(vramcache)  # libvramcache.so, which the PyTorch tests load
fi
build_failed=0
ninja -C "$build" -k 0 -j"${JOBS:-1}" "${targets[@]}" || build_failed=1

mkdir -p "$build/lib"
cp -a /usr/lib/x86_64-linux-gnu/libbenchmark.so* "$build/lib/"

# Executables we built (CMake's own probe binaries under CMakeFiles excluded).
mapfile -t executables < <(find "$build" -path '*/CMakeFiles' -prune -o -type f -executable \
  \( -path "$build/tests/*" -o -path "$build/bench/*" \) ! -name '*.so*' -print | sort)

bad_links=0
for binary in "${executables[@]}"; do
  if ldd "$binary" | grep -E 'libabsl|libcudart|libcuda\.so'; then
    echo "build.sh: $binary needs a library the GPU machine lacks or must not link" >&2
    bad_links=1
  fi
done
[ "$bad_links" = 0 ] || exit 1

rm -rf "$stage"
mkdir -p "$stage/lib"
cp -a "$build/lib/." "$stage/lib/"
for binary in "${executables[@]}"; do
  relative=${binary#"$build"/}
  mkdir -p "$stage/$(dirname "$relative")"
  cp "$binary" "$stage/$relative"
done
if [ -f "$build/allocator/libvramcache.so" ]; then
  mkdir -p "$stage/allocator"
  cp "$build/allocator/libvramcache.so" "$stage/allocator/"
  # libvramcache.so links Abseil's shared libraries (the static archives cannot go into a
  # shared object); its run path $ORIGIN finds these copies on the GPU machine.
  ldd "$build/allocator/libvramcache.so" | awk '/libabsl/ {print $3}' |
    xargs -r -I{} cp -L {} "$stage/allocator/"
  strip --strip-unneeded "$stage"/allocator/*.so* 2>/dev/null || true
fi
# compute-sanitizer for run.sh's memcheck run of the GPU hazard scenarios: fetched from PyPI
# once into build/tools (kept across builds), carried compressed (6.6 MB). Offline, or with
# STAGE_SANITIZER=0 (a full carry is close to its limit), nothing is staged and run.sh reports
# the sanitizer run as absent.
if [ "${STAGE_SANITIZER:-1}" = 1 ]; then
  python3 tests/gpu/stage_compute_sanitizer.py build/tools || true
fi
if [ "${STAGE_SANITIZER:-1}" = 1 ] && [ -f build/tools/compute-sanitizer.tar.xz ]; then
  mkdir -p "$stage/tools"
  cp build/tools/compute-sanitizer.tar.xz build/tools/compute-sanitizer.version "$stage/tools/"
fi
# Symbols are not needed to run; stripping keeps the carried tree well under the limit.
strip --strip-unneeded "${executables[@]/#$build/$stage}" 2>/dev/null || true

size=$(du -sb "$stage" | cut -f1)
echo "build.sh: staged ${#executables[@]} executables in $stage ($((size >> 20)) MiB)"
if [ "$size" -gt "$carry_limit_bytes" ]; then
  echo "build.sh: $stage is over $((carry_limit_bytes >> 20)) MiB; the device machine will refuse it" >&2
  exit 1
fi
if [ "$build_failed" = 1 ]; then
  echo "build.sh: some targets failed to build (see above); staged what did build" >&2
  exit 1
fi
echo "build.sh: on the GPU machine (carry $stage): tests/gpu/run.sh"
