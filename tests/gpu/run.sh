#!/usr/bin/env bash
# The one script run on the lent GPU machine, from the repository root, on binaries built here
# by tests/gpu/build.sh (that machine has CUDA but no Abseil/GoogleTest/Benchmark packages and
# no network). It prints the GPU, checks the binaries' load-time dependencies, runs every test
# binary (each under a timeout), then the replay tool on the shared traces with --device cuda
# and the benchmark binaries with a short minimum time, and ends with a table of results.
# Missing optional binaries are reported as "absent", not as failures. Logs go to $OUT when set
# (the device machine brings that folder back, a few files only), else to <dir>/logs: five files,
# summary.txt, nvidia-smi.txt, tests.log (every test binary's output), replay.log, bench.log.
#
# Usage: tests/gpu/run.sh [dir]   dir: the binaries, default build/gpu-carry (what build.sh
#        stages) or else build/gpu. TEST_TIMEOUT (seconds per test binary, default 300),
#        BENCH_MIN_TIME (seconds per benchmark, default 0.05), JOBS (test binaries at once,
#        default the number of CPUs). Exit status: 0 when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

dir=${1:-}
if [ -z "$dir" ]; then
  if [ -d build/gpu-carry ]; then dir=build/gpu-carry; else dir=build/gpu; fi
fi
logs=${OUT:-$dir/logs}
mkdir -p "$logs"
export LD_LIBRARY_PATH="$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
test_timeout=${TEST_TIMEOUT:-300}
bench_min_time=${BENCH_MIN_TIME:-0.05}
jobs=${JOBS:-$(nproc)}
summary="$logs/summary.txt"
: >"$summary"
: >"$logs/tests.log"
: >"$logs/bench.log"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failures=0

row() { printf '%-40s %-8s %s\n' "$1" "$2" "$3" | tee -a "$summary"; }

echo "== GPU"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used,compute_cap \
    --format=csv 2>&1 | tee "$logs/nvidia-smi.txt"
  nvidia-smi >>"$logs/nvidia-smi.txt" 2>&1
else
  echo "nvidia-smi absent" | tee "$logs/nvidia-smi.txt"
fi

echo "== results ($dir, logs in $logs)"
row "what" "result" "details"

# Load-time dependencies: no Abseil or CUDA runtime (linked statically), no libcuda (fetched at
# run time through the runtime, so a machine without a driver gets "no GPU", not a loader error).
mapfile -t binaries < <(find "$dir/tests" "$dir/bench" -type f -executable ! -name '*.so*' \
  2>/dev/null | sort)
if [ "${#binaries[@]}" -eq 0 ]; then
  row "binaries" "FAIL" "none under $dir/tests or $dir/bench; run tests/gpu/build.sh and carry $dir"
  exit 1
fi
bad=()
for binary in "${binaries[@]}"; do
  if ldd "$binary" 2>&1 | grep -qE 'libabsl|libcudart|libcuda\.so|not found'; then
    bad+=("$(basename "$binary")")
  fi
done
if [ "${#bad[@]}" -eq 0 ]; then
  row "load-time dependencies" "ok" "${#binaries[@]} binaries; no libabsl, libcudart, libcuda"
else
  row "load-time dependencies" "FAIL" "${bad[*]}"
  failures=$((failures + 1))
fi

# Test binaries, several at a time; each writes its own log, read back in name order.
mapfile -t tests < <(find "$dir/tests" -maxdepth 1 -type f -executable -name '*_test' 2>/dev/null |
  sort)
run_test() {
  local binary=$1 log=$2 timeout=$3
  timeout --kill-after=10 "$timeout" "$binary" --gtest_color=no >"$log" 2>&1
  echo $? >"$log.rc"
}
export -f run_test
if [ "${#tests[@]}" -eq 0 ]; then
  row "tests" "absent" "no *_test under $dir/tests"
else
  printf '%s\n' "${tests[@]}" |
    xargs -P "$jobs" -I{} bash -c 'run_test "$1" "$2/$(basename "$1").log" "$3"' _ {} "$scratch" \
      "$test_timeout"
  for binary in "${tests[@]}"; do
    name=$(basename "$binary")
    log="$scratch/$name.log"
    rc=$(cat "$log.rc" 2>/dev/null || echo 1)
    { echo "===== $name (exit $rc)"; cat "$log"; } >>"$logs/tests.log"
    passed=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    failed=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    skipped=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    took=$(sed -n 's/^\[==========\] .* ran\. (\([0-9]*\) ms total)/\1/p' "$log" | tail -1)
    details="pass ${passed:-0} fail ${failed:-0} skip ${skipped:-0}, ${took:-?} ms"
    if [ "$rc" = 0 ]; then
      row "$name" "ok" "$details"
    else
      [ "$rc" = 124 ] || [ "$rc" = 137 ] && details="timed out after ${test_timeout}s; $details"
      row "$name" "FAIL" "exit $rc; $details"
      grep -E '^\[  FAILED  \] [A-Za-z]' "$log" | sed 's/ (.*//' | sort -u | head -20 |
        sed 's/^/    /' |
        tee -a "$summary"
      failures=$((failures + 1))
    fi
  done
fi

# The replay tool on the real GPU, over the shared traces (the repository's copy otherwise).
replay="$dir/bench/replay/vramcache-replay"
traces=()
for folder in shared/traces bench/traces; do
  mapfile -t traces < <(find "$folder" -maxdepth 1 -name '*.csv' 2>/dev/null | sort)
  [ "${#traces[@]}" -gt 0 ] && break
done
if [ ! -x "$replay" ]; then
  row "vramcache-replay --device cuda" "absent" "$replay"
elif ! command -v nvidia-smi >/dev/null; then
  row "vramcache-replay --device cuda" "skip" "no GPU on this machine"
elif [ "${#traces[@]}" -eq 0 ]; then
  row "vramcache-replay --device cuda" "absent" "no traces in shared/traces or bench/traces"
else
  timeout --kill-after=10 "$test_timeout" "$replay" --device cuda "${traces[@]}" \
    >"$logs/replay.log" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    row "vramcache-replay --device cuda" "ok" "${#traces[@]} traces"
  else
    row "vramcache-replay --device cuda" "FAIL" "exit $rc"
    failures=$((failures + 1))
  fi
  head -20 "$logs/replay.log" | sed 's/^/    /' | tee -a "$summary"
fi

# Benchmark binaries: every executable under bench/ but the replay tool.
mapfile -t benches < <(find "$dir/bench" -type f -executable ! -name '*.so*' \
  ! -name vramcache-replay 2>/dev/null | sort)
if [ "${#benches[@]}" -eq 0 ]; then
  row "benchmarks" "absent" "no benchmark binary under $dir/bench"
fi
for binary in "${benches[@]}"; do
  name=$(basename "$binary")
  log="$scratch/$name.log"
  timeout --kill-after=10 "$test_timeout" "$binary" --benchmark_min_time="$bench_min_time" \
    >"$log" 2>&1
  rc=$?
  { echo "===== $name (exit $rc)"; cat "$log"; } >>"$logs/bench.log"
  count=$(grep -cE '^[A-Za-z_].*[0-9]+ (ns|us|ms|s) ' "$log")
  if [ "$rc" = 0 ]; then
    row "$name" "ok" "$count benchmarks, min time ${bench_min_time}s"
  else
    row "$name" "FAIL" "exit $rc after $count benchmarks"
    failures=$((failures + 1))
  fi
  grep -E '^(Benchmark|-{10}|[A-Za-z_].*[0-9]+ (ns|us|ms|s) )' "$log" | head -40 |
    sed 's/^/    /' | tee -a "$summary"
done

# PyTorch through vramcache's shared library (ctypes / CUDAPluggableAllocator path), and the
# native adapter when it exists: pytest files under tests/gpu, each test in its own process.
library="$PWD/$dir/allocator/libvramcache.so"
mapfile -t torch_tests < <(find tests/gpu -maxdepth 1 -name 'test_*.py' 2>/dev/null | sort)
if [ ! -f "$library" ]; then
  row "pytorch tests" "absent" "$library"
elif ! python3 -c 'import torch' 2>/dev/null; then
  row "pytorch tests" "skip" "no torch in python3"
else
  VRAMCACHE_LIBRARY="$library" PYTHONPATH="$PWD/torch_plugin${PYTHONPATH:+:$PYTHONPATH}" \
    timeout --kill-after=10 "$test_timeout" python3 -m pytest -q -p no:cacheprovider \
    "${torch_tests[@]}" >"$logs/pytorch.log" 2>&1
  rc=$?
  result=$(tail -1 "$logs/pytorch.log")
  if [ "$rc" = 0 ]; then
    row "pytorch tests" "ok" "$result"
  else
    row "pytorch tests" "FAIL" "exit $rc: $result"
    grep -E '^(FAILED|ERROR)' "$logs/pytorch.log" | head -20 | sed 's/^/    /' | tee -a "$summary"
    failures=$((failures + 1))
  fi
fi

echo "== $failures failure(s)" | tee -a "$summary"
[ "$failures" -eq 0 ]
