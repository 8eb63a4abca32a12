#!/usr/bin/env bash
# Rewrites golden files from the current code, only after an intended behaviour change; review
# the result with `git diff tests/golden`. A refactor must leave them unchanged.
#   tests/golden/regenerate.sh          golden_results.txt and device_calls.txt (golden_test:
#                                       the allocator's statistics and device calls)
#   tests/golden/regenerate.sh config   config_messages.txt (config_characterization_test: the
#                                       configuration parser's descriptions and error messages)
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-allocator}" in
  allocator) test=golden_test ;;
  config) test=config_characterization_test ;;
  *) echo "usage: $0 [config]" >&2; exit 2 ;;
esac
source .ci/env.sh
cmake --preset default >/dev/null
cmake --build --preset default --target "$test"
VRAMCACHE_GOLDEN_UPDATE=1 "build/default/tests/$test" --gtest_brief=1
git diff --stat -- tests/golden
