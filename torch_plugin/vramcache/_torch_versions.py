"""The PyTorch releases vramcache supports: the one place that says which.

install() checks the running torch against it; the scripts that fetch PyTorch's headers and
check the native adapter (tests/torch_versions/) read it for the releases to test. Both ends are
minor releases (every patch release of a supported minor is supported). Raising NEWEST means
checking the adapter against that release's headers first (docs/pytorch.md says how).
"""

import re
from typing import List, Tuple

OLDEST = (2, 11)
NEWEST = (2, 15)
# From this release on, PyTorch's headers need C++20 (std::strong_ordering in
# c10/util/intrusive_ptr.h); the adapter is compiled as C++17 against older ones, as PyTorch's
# own extensions are.
CXX20_FROM = (2, 14)

_RELEASE = re.compile(r"^\s*(\d+)\.(\d+)(?:\.\d+)?")


class UnsupportedTorchVersion(RuntimeError):
    """The installed PyTorch is outside OLDEST..NEWEST."""


def supported_range() -> str:
    return f"{OLDEST[0]}.{OLDEST[1]} to {NEWEST[0]}.{NEWEST[1]}"


def supported_minors() -> List[str]:
    """Every supported minor release, oldest first ("2.11", ..., "2.15")."""
    return [f"{OLDEST[0]}.{minor}" for minor in range(OLDEST[1], NEWEST[1] + 1)]


def parse(version: str) -> Tuple[int, int]:
    """(major, minor) of a torch.__version__ such as "2.13.0+cu130" or "2.15.0.dev20261101"."""
    match = _RELEASE.match(str(version))
    if not match:
        raise UnsupportedTorchVersion(
            f"vramcache supports PyTorch {supported_range()}; cannot read this PyTorch's "
            f"version {version!r} (expected major.minor...)")
    return int(match.group(1)), int(match.group(2))


def cxx_standard(version: str) -> str:
    """The -std= value to compile the adapter with against PyTorch `version`."""
    return "c++20" if parse(version) >= CXX20_FROM else "c++17"


def check(version: str) -> Tuple[int, int]:
    """(major, minor) of `version`; UnsupportedTorchVersion, saying what to do, outside the
    supported range."""
    release = parse(version)
    if not OLDEST <= release <= NEWEST:
        raise UnsupportedTorchVersion(
            f"vramcache supports PyTorch {supported_range()}; this is PyTorch {version}. Install "
            f"a supported release (pip install 'torch>={OLDEST[0]}.{OLDEST[1]},<"
            f"{NEWEST[0]}.{NEWEST[1] + 1}') or a vramcache that supports this one.")
    return release


if __name__ == "__main__":
    # For scripts and CMake: the supported minor releases, one a line; with --cxx-standard
    # VERSION, the -std= value for that release; --check VERSION is the same but exits 1 with
    # check()'s message for a release outside the range.
    import sys
    if len(sys.argv) == 3 and sys.argv[1] in ("--cxx-standard", "--check"):
        if sys.argv[1] == "--check":
            try:
                check(sys.argv[2])
            except UnsupportedTorchVersion as e:
                sys.exit(str(e))
        print(cxx_standard(sys.argv[2]))
    elif len(sys.argv) == 1:
        print("\n".join(supported_minors()))
    else:
        sys.exit("usage: _torch_versions.py [--cxx-standard VERSION | --check VERSION]")
