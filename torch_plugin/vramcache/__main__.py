"""The launcher: `python -m vramcache [options] script.py [args...]` (or `-m module`).

Installs vramcache as PyTorch's CUDA allocator, configured from VRAMCACHE_CONF (or --conf),
then runs the program as __main__ with its own argv, exactly as `python script.py args` would.
Without PyTorch the program still runs, with the library configured and a warning.
"""

import atexit
import os
import runpy
import sys
from typing import List, NoReturn, Optional

USAGE = """usage: python -m vramcache [--conf CONF] [--summary] (script.py | -m module) [args...]

Runs a Python program with vramcache as PyTorch's CUDA allocator.

  --conf CONF   configuration (VRAMCACHE_CONF syntax, e.g. budget:20GiB); default: $VRAMCACHE_CONF
  --summary     print vramcache.memory_summary() to stderr when the program exits
  -m module     run a library module as a script, like python -m
"""


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"vramcache: {message}\n{USAGE}")
    sys.exit(2)


class _Launch:
    def __init__(self) -> None:
        self.conf: Optional[str] = os.environ.get("VRAMCACHE_CONF")
        self.summary = False
        self.module: Optional[str] = None
        self.script: Optional[str] = None
        self.args: List[str] = []


def _parse(argv: List[str]) -> _Launch:
    launch = _Launch()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            sys.exit(0)
        elif arg == "--summary":
            launch.summary = True
        elif arg == "--conf" or arg == "-m":
            if i + 1 >= len(argv):
                _fail(f"{arg} needs a value")
            if arg == "--conf":
                launch.conf = argv[i + 1]
                i += 1
            else:
                launch.module, launch.args = argv[i + 1], argv[i + 2:]
                return launch
        elif arg.startswith("--conf="):
            launch.conf = arg[len("--conf="):]
        elif arg.startswith("-") and arg != "-":
            _fail(f"unknown option {arg}")
        else:
            launch.script, launch.args = arg, argv[i + 1:]
            return launch
        i += 1
    _fail("no script or module to run")


def _install(conf: Optional[str]) -> None:
    import vramcache
    try:
        import torch  # noqa: F401  (only to learn whether PyTorch is there)
    except ImportError:
        if conf is not None:
            vramcache.configure(conf)
        sys.stderr.write("vramcache: PyTorch is not installed; the program runs with "
                         "vramcache loaded but not installed as PyTorch's allocator\n")
        return
    vramcache.install(conf)


def main(argv: Optional[List[str]] = None) -> None:
    launch = _parse(sys.argv[1:] if argv is None else argv)
    if launch.script is not None and not os.path.exists(launch.script):
        _fail(f"can't open file {launch.script!r}: no such file")
    try:
        _install(launch.conf)
    except Exception as e:  # a clear one-line reason beats a traceback from the launcher
        sys.stderr.write(f"vramcache: cannot install: {e}\n")
        sys.exit(1)
    if launch.summary:
        import vramcache
        atexit.register(lambda: sys.stderr.write(vramcache.memory_summary()))
    if launch.module is not None:
        sys.argv = [launch.module] + launch.args
        sys.path[0] = os.getcwd()  # what `python -m module` puts first
        runpy.run_module(launch.module, run_name="__main__", alter_sys=True)
    else:
        assert launch.script is not None
        sys.argv = [launch.script] + launch.args
        sys.path[0] = os.path.dirname(os.path.abspath(launch.script))  # as `python script.py`
        runpy.run_path(launch.script, run_name="__main__")


if __name__ == "__main__":
    main()
