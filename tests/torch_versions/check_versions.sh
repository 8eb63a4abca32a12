#!/usr/bin/env bash
# Checks the native adapter against PyTorch releases without installing any: for each release,
# fetches its headers and libc10 libraries from PyPI (fetch_torch.py, cached), then runs
# tests/gpu/check_native_compiles.sh (compile, link, self-check on the simulated device).
#
# Usage: tests/torch_versions/check_versions.sh [all | ends | RELEASE...]
#   all (the default): every supported minor release (torch_plugin/vramcache/_torch_versions.py);
#   ends: the oldest and the newest (what CI runs); or releases such as 2.13 or 2.12.0.
# Prints one result line per release and a table at the end; exits 1 when any failed or skipped
# (a skip here means the check could not run: no CUDA toolkit or no libvramcache.so).
set -uo pipefail
cd "$(dirname "$0")/../.."
versions_py=torch_plugin/vramcache/_torch_versions.py

case "${1:-all}" in
  all) mapfile -t releases < <(python3 "$versions_py") ;;
  ends) mapfile -t all < <(python3 "$versions_py"); releases=("${all[0]}" "${all[-1]}") ;;
  *) releases=("$@") ;;
esac

results=()
status=0
for release in "${releases[@]}"; do
  start=$(date +%s)
  if ! torch_dir=$(python3 tests/torch_versions/fetch_torch.py "$release"); then
    results+=("$release | fetch failed | $(($(date +%s) - start))s")
    status=1
    continue
  fi
  fetched=$(date +%s)
  exact=$(basename "$(dirname "$torch_dir")")
  log=$(bash tests/gpu/check_native_compiles.sh "$torch_dir" 2>&1)
  rc=$?
  echo "$log" | sed "s/^/[$exact] /"
  if [ $rc -ne 0 ]; then
    verdict="FAIL"
    status=1
  elif echo "$log" | grep -q "SKIP"; then
    verdict="SKIP"
    status=1
  else
    verdict="pass"
  fi
  results+=("${exact#torch-} | $verdict | fetch $((fetched - start))s, check $(($(date +%s) - fetched))s")
done
echo
echo "check_versions: release | result | time"
printf 'check_versions: %s\n' "${results[@]}"
exit $status
