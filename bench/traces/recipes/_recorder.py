"""Shared by the recipes: finds the project's trace recorder and runs one workload under it.

The recorder (../shared/tools/trace-recorder beside the repository, or $TRACE_RECORDER) is
called from where it lives, not copied: it compiles its logging allocator on first use and must
be installed before the first CPU tensor that should be seen, so it is imported before any
model code runs. Every recipe is `python3 RECIPE.py OUT.csv`, seeded and on 2 threads, so a
re-recording gives the same sizes in the same order.
"""
import os
import sys

_repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
_recorder_dir = os.environ.get(
    "TRACE_RECORDER", os.path.join(_repo, "..", "shared", "tools", "trace-recorder"))
if not os.path.isfile(os.path.join(_recorder_dir, "record.py")):
    sys.exit(f"trace recorder not found at {_recorder_dir} (set TRACE_RECORDER)")
sys.path.insert(0, _recorder_dir)

import record  # noqa: E402  (installs the logging allocator)
import torch  # noqa: E402


def run(workload):
    """Records workload() into the CSV named on the command line."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT.csv")
    torch.manual_seed(0)
    torch.set_num_threads(2)  # this machine's cores; sizes and order do not depend on it
    with record.recording(sys.argv[1]):
        workload()
