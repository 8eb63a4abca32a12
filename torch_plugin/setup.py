"""Builds the vramcache package with a prebuilt libvramcache.so inside it.

The library is not compiled here (that needs CMake, the CUDA toolkit and Abseil): it is taken
from VRAMCACHE_LIBRARY, else from the source tree's release build (build/release/allocator/),
which the README's `bash .ci/quickstart` produces. Without one the build stops and says so.
"""

import os
import shutil
from pathlib import Path

LIBRARY_NAME = "libvramcache.so"
HERE = Path(__file__).resolve().parent


def find_prebuilt_library(environ=os.environ, repo=HERE.parent) -> Path:
    """The library to bundle; raises FileNotFoundError with what to do when there is none."""
    explicit = environ.get("VRAMCACHE_LIBRARY")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(
                f"VRAMCACHE_LIBRARY={explicit} does not name an existing file")
        return path
    path = Path(repo) / "build" / "release" / "allocator" / LIBRARY_NAME
    if path.is_file():
        return path
    raise FileNotFoundError(
        f"{LIBRARY_NAME} is not built yet ({path} does not exist). Run the README's setup "
        f"command first (`bash .ci/quickstart` in the repository root), or set "
        f"VRAMCACHE_LIBRARY=/path/to/{LIBRARY_NAME}, then run pip install again.")


if __name__ == "__main__":
    from setuptools import setup
    from setuptools.command.build_py import build_py
    from setuptools.dist import Distribution

    class BuildPyWithLibrary(build_py):
        """Copies the prebuilt library next to the package's modules."""

        def run(self):
            super().run()
            try:
                library = find_prebuilt_library()
            except FileNotFoundError as e:
                raise SystemExit(f"vramcache: {e}") from None
            package = Path(self.build_lib) / "vramcache"
            package.mkdir(parents=True, exist_ok=True)
            shutil.copy2(library, package / LIBRARY_NAME)
            # Shared Abseil libraries staged beside it travel too: the library finds them
            # through its $ORIGIN run path, so the installed package needs no system Abseil.
            for dependency in sorted(library.parent.glob("libabsl_*.so*")):
                shutil.copy2(dependency, package / dependency.name)
            print(f"vramcache: bundled {library}")

    class BinaryDistribution(Distribution):
        """The wheel holds a native library, so it is tagged for this platform."""

        def has_ext_modules(self):
            return True

    setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
