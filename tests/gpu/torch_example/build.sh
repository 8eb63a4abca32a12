#!/usr/bin/env bash
# Configures and builds the LibTorch example (torch_plugin/examples: train_mlp over
# vramcache::torch) against the installed torch, with Torch_DIR from torch.utils.cmake_prefix_path.
# Run by tests/gpu/run.sh in the background; test_torch_native.py runs the result.
#
# Usage: tests/gpu/torch_example/build.sh BUILD_DIR LIBVRAMCACHE [JOBS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
build=${1:?usage: $0 BUILD_DIR LIBVRAMCACHE [JOBS]}
library=${2:?usage: $0 BUILD_DIR LIBVRAMCACHE [JOBS]}
prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S torch_plugin/examples -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DVRAMCACHE_LIBRARY="$library"
cmake --build "$build" -j "${3:-2}"
