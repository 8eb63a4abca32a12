# Sourced by the scripts in .ci/: puts the CUDA toolkit on PATH when it is installed.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
export CTEST_OUTPUT_ON_FAILURE=1
