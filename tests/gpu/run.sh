#!/usr/bin/env bash
# The one script run on the lent GPU machine, from the repository root, on binaries built here
# by tests/gpu/build.sh (that machine has CUDA but no Abseil/GoogleTest/Benchmark packages and
# no network). It prints the GPU, checks the binaries' load-time dependencies, runs every test
# binary (each under a timeout), the GPU hazard scenarios again under compute-sanitizer's
# memcheck (when build.sh staged it), then the replay tool on the shared traces with --device cuda
# and the benchmark binaries with a short minimum time, PyTorch's native allocator as a peer
# (torch-peer-bench, built here against the installed torch) with a side-by-side table, and the
# PyTorch tests (tests/gpu/test_torch_*.py: every scenario in its own process, no -x), and ends
# with a table of results. What needs the installed torch is built in the background at the
# start, while the test binaries run: the native adapter (JIT, into build/torch-extensions),
# torch-peer-bench and the LibTorch example (build/torch-examples). Without a GPU the GPU parts
# are skipped (VRAMCACHE_GPU_PREP=1 still runs those builds, to check them on a CPU machine).
# Missing optional binaries are reported as "absent", not as failures. Every step has a
# timeout; the whole run is meant to take under 7 minutes on an H100 host. Logs go to $OUT when
# set (the device machine brings that folder back), else to <dir>/logs: summary.txt,
# nvidia-smi.txt, tests.log (every test binary's output), sanitizer.log (the memcheck run),
# replay.log, bench.log, prep.log (the background builds), pytorch.log.
#
# Usage: tests/gpu/run.sh [dir]   dir: the binaries, default build/gpu-carry (what build.sh
#        stages) or else build/gpu. TEST_TIMEOUT (seconds per test binary, default 150),
#        BENCH_MIN_TIME (seconds per benchmark, default 0.05), JOBS (test binaries at once,
#        default the number of CPUs), PYTEST_TIMEOUT (seconds per PyTorch test file, default
#        330), PREP_TIMEOUT (seconds per background build, default 300), SANITIZER_TIMEOUT
#        (seconds for the memcheck run, default 300). Exit status: 0 when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

dir=${1:-}
if [ -z "$dir" ]; then
  if [ -d build/gpu-carry ]; then dir=build/gpu-carry; else dir=build/gpu; fi
fi
logs=${OUT:-$dir/logs}
mkdir -p "$logs"
export LD_LIBRARY_PATH="$PWD/$dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
test_timeout=${TEST_TIMEOUT:-150}
pytest_timeout=${PYTEST_TIMEOUT:-330}
prep_timeout=${PREP_TIMEOUT:-300}
bench_min_time=${BENCH_MIN_TIME:-0.05}
jobs=${JOBS:-$(nproc)}
summary="$logs/summary.txt"
: >"$summary"
: >"$logs/tests.log"
: >"$logs/bench.log"
: >"$logs/prep.log"
scratch=$(mktemp -d)
prep_pids=()
cleanup() {
  for pid in "${prep_pids[@]}"; do kill -- "-$pid" 2>/dev/null; done
  rm -rf "$scratch"
}
trap cleanup EXIT
failures=0
started=$(date +%s)

row() { printf '%-40s %-8s %s\n' "$1" "$2" "$3" | tee -a "$summary"; }

echo "== GPU"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used,compute_cap \
    --format=csv 2>&1 | tee "$logs/nvidia-smi.txt"
  nvidia-smi >>"$logs/nvidia-smi.txt" 2>&1
else
  echo "nvidia-smi absent" | tee "$logs/nvidia-smi.txt"
fi

have_gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then have_gpu=1; fi

# Background builds against the installed torch, started now so that they overlap the test
# binaries: each its own process group (killed at exit), log and status file under $scratch.
library="$PWD/$dir/allocator/libvramcache.so"
have_torch=0
python3 -c 'import torch' 2>/dev/null && have_torch=1
prep() {  # name timeout command...
  local name=$1 timeout=$2
  shift 2
  # setsid: its own process group, so that cleanup() ends the whole build by the group's id.
  setsid bash -c 'timeout --kill-after=10 "$0" "${@:3}" >"$1" 2>&1; echo $? >"$2"' \
    "$timeout" "$scratch/prep-$name.log" "$scratch/prep-$name.rc" "$@" </dev/null &
  prep_pids+=($!)
}
prep_wait() {  # name: waits for its status file; prints the exit status (none: "absent")
  local name=$1
  [ -n "${prep_started:-}" ] || { echo absent; return; }
  while [ ! -f "$scratch/prep-$name.rc" ]; do sleep 1; done
  { echo "===== $name (exit $(cat "$scratch/prep-$name.rc"))"; cat "$scratch/prep-$name.log"; } \
    >>"$logs/prep.log"
  cat "$scratch/prep-$name.rc"
}
prep_report() {  # name label: waits (once) and adds a row; a failed build counts as a failure
  local name=$1 label=$2 rc
  [ -n "${prep_started:-}" ] && [ ! -f "$scratch/prep-$name.reported" ] || return 0
  rc=$(prep_wait "$name")
  touch "$scratch/prep-$name.reported"
  if [ "$rc" = 0 ]; then
    row "$label" "ok" "$(( $(stat -c %Y "$scratch/prep-$name.rc") - started )) s after the start"
  else
    row "$label" "FAIL" "exit $rc; prep.log: $(tail -1 "$scratch/prep-$name.log" | cut -c1-80)"
    failures=$((failures + 1))
  fi
}
export TORCH_EXTENSIONS_DIR="$PWD/build/torch-extensions"
example_dir="$PWD/build/torch-examples"
if [ -f "$library" ] && [ "$have_torch" = 1 ] && { [ "$have_gpu" = 1 ] || [ "${VRAMCACHE_GPU_PREP:-0}" = 1 ]; }; then
  prep_started=1
  prep_jobs=$(( $(nproc) > 4 ? $(nproc) / 2 : 2 ))
  mkdir -p "$TORCH_EXTENSIONS_DIR" "$example_dir"
  prep adapter "$prep_timeout" env VRAMCACHE_LIBRARY="$library" MAX_JOBS="$prep_jobs" \
    PYTHONPATH="$PWD/torch_plugin" python3 -c 'from vramcache import _native; print(_native.build())'
  prep peer "$prep_timeout" bash tests/gpu/torch_peer/build.sh "$scratch/torch-peer"
  prep example "$prep_timeout" bash tests/gpu/torch_example/build.sh "$example_dir" "$library" \
    "$prep_jobs"
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

# The GPU hazard scenarios again under compute-sanitizer's memcheck (the plain run is above):
# an access to unmapped or freed memory that the scenarios' own checks could miss (a write
# that faults nowhere visible, a read of released memory) is reported here. The tool comes
# from build.sh as tools/compute-sanitizer.tar.xz; --error-exitcode tells its findings apart
# from the tests' own failures.
scenarios="$dir/tests/hazard_scenarios_test"
sanitizer_archive="$dir/tools/compute-sanitizer.tar.xz"
sanitizer_timeout=${SANITIZER_TIMEOUT:-300}
sanitizer_found=86
: >"$logs/sanitizer.log"
if [ ! -x "$scenarios" ]; then
  row "memcheck hazard_scenarios_test" "absent" "$scenarios"
elif [ ! -f "$sanitizer_archive" ]; then
  row "memcheck hazard_scenarios_test" "absent" "no $sanitizer_archive (build.sh was offline?)"
elif [ "$have_gpu" = 0 ]; then
  row "memcheck hazard_scenarios_test" "skip" "no GPU on this machine"
elif ! tar -xJf "$sanitizer_archive" -C "$scratch"; then
  row "memcheck hazard_scenarios_test" "FAIL" "could not unpack $sanitizer_archive"
  failures=$((failures + 1))
else
  sanitizer_version=$(cat "$dir/tools/compute-sanitizer.version" 2>/dev/null)
  timeout --kill-after=10 "$sanitizer_timeout" "$scratch/compute-sanitizer/compute-sanitizer" \
    --tool memcheck --error-exitcode "$sanitizer_found" "$scenarios" --gtest_color=no \
    >"$logs/sanitizer.log" 2>&1
  rc=$?
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$logs/sanitizer.log" | tail -1)
  tests_summary=$(grep -E '^\[  (PASSED|FAILED|SKIPPED) \]' "$logs/sanitizer.log" |
    grep -vE '\] [A-Za-z]' | tr -s ' ' | tr '\n' ' ')
  details="${errors:-?} memcheck errors; ${tests_summary:-no test summary}; ${sanitizer_version}"
  if [ "$rc" = 0 ]; then
    row "memcheck hazard_scenarios_test" "ok" "$details"
  else
    [ "$rc" = "$sanitizer_found" ] && details="memcheck found errors (sanitizer.log); $details"
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && details="timed out after ${sanitizer_timeout}s; $details"
    row "memcheck hazard_scenarios_test" "FAIL" "exit $rc; $details"
    grep -m 10 -E '^========= (Invalid|Program hit|Error)' "$logs/sanitizer.log" | cut -c1-150 |
      sed 's/^/    /' | tee -a "$summary"
    failures=$((failures + 1))
  fi
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
  # One replay run: its row (ok, or FAIL with the exit status), its output in $logs/$2.
  replay_row() {
    local name=$1 log=$2
    shift 2
    timeout --kill-after=10 "$test_timeout" "$replay" --device cuda "$@" "${traces[@]}" \
      >"$logs/$log" 2>&1
    local rc=$?
    if [ "$rc" = 0 ]; then
      row "$name" "ok" "${#traces[@]} traces"
    else
      row "$name" "FAIL" "exit $rc"
      failures=$((failures + 1))
    fi
  }
  # Both modes side by side: the map/unmap calls and their time on the real device.
  replay_row "vramcache-replay --device cuda" replay.log --mode both
  head -20 "$logs/replay.log" | sed 's/^/    /' | tee -a "$summary"
  # The steady state on the real device: passes 2 and 3 should make no device call.
  replay_row "vramcache-replay --device cuda --repeat 3" replay_repeat.log --mode vmm --repeat 3
  grep -E "^trace|per pass|utilization" "$logs/replay_repeat.log" | sed 's/^/    /' |
    tee -a "$summary"
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
done

# PyTorch's native allocator as a peer: torch-peer-bench, built in the background above.
peer_rc=$(prep_wait peer)
peer_bin="$scratch/torch-peer/torch-peer-bench"
if [ "$peer_rc" = absent ]; then
  row "torch-peer-bench" "skip" "$([ "$have_torch" = 1 ] && echo "no GPU" || echo "no torch in python3")"
elif [ "$peer_rc" = 3 ]; then
  row "torch-peer-bench" "skip" "$(tail -1 "$scratch/prep-peer.log")"
elif [ "$peer_rc" != 0 ]; then
  row "torch-peer-bench build" "FAIL" "exit $peer_rc; prep.log"
  failures=$((failures + 1))
else
  timeout --kill-after=10 120 "$peer_bin" --min_time="$bench_min_time" --repetitions=3 \
    >"$scratch/torch-peer-bench.log" 2>&1
  rc=$?
  { echo "===== torch-peer-bench (exit $rc)"; cat "$scratch/torch-peer-bench.log"; } \
    >>"$logs/bench.log"
  count=$(grep -cE '^gpu_.* ns ' "$scratch/torch-peer-bench.log")
  if [ "$rc" = 0 ]; then
    row "torch-peer-bench" "ok" "$count benchmarks, median of 3"
  else
    row "torch-peer-bench" "FAIL" "exit $rc after $count benchmarks"
    failures=$((failures + 1))
  fi
fi
table=$(python3 tests/gpu/torch_peer/bench_table.py "$scratch/vramcache-gpu-bench.log" \
  "$scratch/torch-peer-bench.log" 2>&1)
[ -n "$table" ] && echo "$table" | sed 's/^/    /' | tee -a "$summary"

# PyTorch: the CUDAPluggableAllocator path and the native adapter, one pytest run per file (no
# -x: every scenario runs, each in its own process), after the background builds they use.
mapfile -t torch_tests < <(find tests/gpu -maxdepth 1 -name 'test_torch_*.py' 2>/dev/null | sort)
: >"$logs/pytorch.log"
if [ ! -f "$library" ]; then
  row "pytorch tests" "absent" "$library"
elif [ "$have_torch" = 0 ]; then
  row "pytorch tests" "skip" "no torch in python3"
elif [ "$have_gpu" = 0 ]; then
  row "pytorch tests" "skip" "no GPU on this machine"
else
  prep_report adapter "native adapter build (JIT)"
  prep_report example "LibTorch example build"
  cp "$scratch/prep-example.log" "$example_dir/build.log" 2>/dev/null
  for file in "${torch_tests[@]}"; do
    name=$(basename "$file" .py)
    VRAMCACHE_LIBRARY="$library" PYTHONPATH="$PWD/torch_plugin${PYTHONPATH:+:$PYTHONPATH}" \
      VRAMCACHE_LIBTORCH_EXAMPLE_DIR="$example_dir" \
      timeout --kill-after=10 "$pytest_timeout" python3 -m pytest -q -rfEs -p no:cacheprovider \
      "$file" >"$scratch/$name.log" 2>&1
    rc=$?
    { echo "===== $name (exit $rc)"; cat "$scratch/$name.log"; } >>"$logs/pytorch.log"
    result=$(grep -E '(passed|failed|skipped|error)' "$scratch/$name.log" | tail -1 | tr -d '=')
    if [ "$rc" = 0 ]; then
      row "$name" "ok" "$result"
    else
      [ "$rc" = 124 ] || [ "$rc" = 137 ] && result="timed out after ${pytest_timeout}s; $result"
      row "$name" "FAIL" "exit $rc: $result"
      failures=$((failures + 1))
    fi
    # Which scenarios failed or were skipped, and why (pytest's short summary), short.
    grep -E '^(FAILED|ERROR|SKIPPED)' "$scratch/$name.log" | cut -c1-150 | head -15 |
      sed 's/^/    /' | tee -a "$summary"
  done
fi

# Without a GPU (VRAMCACHE_GPU_PREP=1) the builds are still checked.
prep_report adapter "native adapter build (JIT)"
prep_report example "LibTorch example build"
row "total time" "" "$(($(date +%s) - started)) s"
echo "== $failures failure(s)" | tee -a "$summary"
[ "$failures" -eq 0 ]
