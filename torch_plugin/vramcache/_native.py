"""The native PyTorch integration: builds (once, cached) and loads the C++ adapter of
torch_plugin/native, which implements PyTorch's CUDAAllocator interface on vramcache's C ABI.

install(conf) is what vramcache.install(native=True) runs. The adapter is compiled on this
machine by torch.utils.cpp_extension (a C++ compiler and ninja are needed; the first build takes
a few seconds to a minute, later calls reuse it from TORCH_EXTENSIONS_DIR, by default
~/.cache/torch_extensions). VRAMCACHE_NATIVE_LIBRARY names a prebuilt adapter instead (e.g. the
CMake build of torch_plugin/native), VRAMCACHE_NATIVE_BUILD_DIR where to build; an adapter that
`pip install` built into the package is used when it was built for the running PyTorch. It links
libvramcache.so by its soname, and this module loads that library first, so the adapter and
vramcache's Python functions share one allocator.
"""

import ctypes
import os
import threading
from pathlib import Path
from typing import List, NamedTuple, Optional

from . import _library, _torch_versions

EXTENSION_NAME = "vramcache_torch_native"
SOURCES = ("snapshot_from_c.cpp", "vramcache_torch_allocator.cpp", "install.cpp")
HEADER = "vramcache.h"
# Built by `pip install` when it could see a CUDA PyTorch, with that PyTorch's version beside it.
BUNDLED_ADAPTER = "libvramcache_torch.so"
BUNDLED_ADAPTER_VERSION = "adapter_torch_version.txt"
LIBRARY_VARIABLE = "VRAMCACHE_NATIVE_LIBRARY"
BUILD_DIR_VARIABLE = "VRAMCACHE_NATIVE_BUILD_DIR"


class NativeUnavailable(_library.VramcacheError):
    """The adapter cannot be built or loaded here (no compiler, no ninja, no CUDA PyTorch, ...).

    install(native=None) falls back to CUDAPluggableAllocator on this error, and only on it."""


class NativeAllocator:
    """What install() returns on the native path: the loaded adapter."""

    kind = "native"

    def __init__(self, library: Path, handle: ctypes.CDLL):
        self.library = library
        self._handle = handle

    def built_for(self) -> str:
        """The PyTorch version the adapter was compiled against."""
        return self._handle.vramcache_torch_built_for().decode()

    def __repr__(self) -> str:
        return f"<vramcache native allocator {self.library}>"


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def source_dir() -> Path:
    """torch_plugin/native: a copy inside the installed package, else the source tree's."""
    for folder in (_package_dir() / "native", _package_dir().parent / "native"):
        if all((folder / name).is_file() for name in SOURCES):
            return folder
    raise NativeUnavailable(
        "the adapter's sources (torch_plugin/native/*.cpp) are not in this installation")


def header_dir() -> Path:
    """Where vramcache.h is: beside the sources when installed, else allocator/api."""
    for folder in (source_dir(), _package_dir().parent.parent / "allocator" / "api"):
        if (folder / HEADER).is_file():
            return folder
    raise NativeUnavailable(f"{HEADER} (vramcache's C ABI header) is not in this installation")


def _cpp_extension():
    try:
        import torch
        import torch.utils.cpp_extension as cpp_extension
    except ImportError as e:
        raise NativeUnavailable(f"cannot import torch.utils.cpp_extension ({e})") from e
    cuda = getattr(getattr(torch, "version", None), "cuda", None)
    if not cuda:
        raise NativeUnavailable("this PyTorch is built without CUDA")
    if not cpp_extension.is_ninja_available():
        raise NativeUnavailable("ninja is not installed (pip install ninja)")
    return cpp_extension


class CudaRuntime(NamedTuple):
    """The CUDA runtime the adapter compiles and links against."""

    include: Path  # holds cuda_runtime_api.h
    lib_dir: Path
    lib_name: str  # libcudart.so, or a versioned name where pip's wheels ship only that


def find_cuda_runtime(cuda_home: Optional[str], torch_dir: Path) -> CudaRuntime:
    """The CUDA toolkit at `cuda_home` when it has the runtime's headers, else the headers and
    libcudart of NVIDIA's pip wheels beside torch (nvidia/cu<N>/ for CUDA 13 and later,
    nvidia/cuda_runtime/ before), which a pip-only environment with a CUDA PyTorch has."""
    candidates = []
    if cuda_home:
        home = Path(cuda_home)
        candidates += [(home / "include", home / name) for name in ("lib64", "lib")]
    nvidia = torch_dir.parent / "nvidia"
    for folder in sorted(nvidia.glob("cu[0-9]*"), reverse=True) + [nvidia / "cuda_runtime"]:
        candidates.append((folder / "include", folder / "lib"))
    for include, lib_dir in candidates:
        if not (include / "cuda_runtime_api.h").is_file():
            continue
        libraries = sorted(p.name for p in lib_dir.glob("libcudart.so*"))
        if libraries:
            return CudaRuntime(include, lib_dir, libraries[0])  # the shortest name first
    raise NativeUnavailable(
        "no CUDA runtime found: neither a toolkit (CUDA_HOME" +
        (f"={cuda_home}" if cuda_home else " unset") + ") nor NVIDIA's pip wheels beside torch "
        f"({nvidia}/cu*/, {nvidia}/cuda_runtime/) have cuda_runtime_api.h and libcudart; "
        "the adapter needs both")


def _link_flags(cpp_extension, library: Path, cuda: CudaRuntime) -> List[str]:
    # libvramcache by soname, with a run path to the copy we loaded: the loader then binds the
    # adapter to that already-loaded copy rather than a second one. c10_cuda and cudart by hand:
    # with_cuda=True would also ask for GPU architecture flags, which need a GPU or
    # TORCH_CUDA_ARCH_LIST, for an adapter that has no device code.
    return [f"-L{library.parent}", f"-l:{library.name}", f"-Wl,-rpath,{library.parent}",
            f"-L{cpp_extension.TORCH_LIB_PATH}", "-lc10_cuda",
            f"-L{cuda.lib_dir}", f"-l:{cuda.lib_name}", f"-Wl,-rpath,{cuda.lib_dir}"]


def bundled_adapter(torch_version: str) -> Optional[Path]:
    """The adapter `pip install` built into the package (torch_plugin/CMakeLists.txt), when it
    was built against this very PyTorch release; None otherwise (then build() compiles one)."""
    library = _package_dir() / BUNDLED_ADAPTER
    stamp = _package_dir() / BUNDLED_ADAPTER_VERSION
    if not library.is_file() or not stamp.is_file():
        return None
    release = str(torch_version).split("+", 1)[0]
    return library if stamp.read_text().strip() == release else None


def build(verbose: bool = False) -> Path:
    """The adapter's shared library: VRAMCACHE_NATIVE_LIBRARY's, else the one pip built into the
    package for this PyTorch, else compiled now if the cached one is missing or stale.

    Raises NativeUnavailable (with the compiler's last lines) when it cannot be built."""
    explicit = os.environ.get(LIBRARY_VARIABLE)
    if explicit:
        if not Path(explicit).is_file():
            raise NativeUnavailable(f"{LIBRARY_VARIABLE}={explicit} does not name a file")
        return Path(explicit)
    try:
        import torch
        bundled = bundled_adapter(torch.__version__)
    except ImportError:
        bundled = None  # _cpp_extension() says why
    if bundled is not None:
        return bundled
    cpp_extension = _cpp_extension()
    import torch
    torch_version = torch.__version__
    cuda = find_cuda_runtime(getattr(cpp_extension, "CUDA_HOME", None),
                             Path(torch.__file__).resolve().parent)
    library = _library.library_path()  # loads libvramcache.so before the adapter needs it
    sources = source_dir()
    build_dir = os.environ.get(BUILD_DIR_VARIABLE)
    if build_dir:
        Path(build_dir).mkdir(parents=True, exist_ok=True)
    try:
        built = cpp_extension.load(
            name=EXTENSION_NAME,
            sources=[str(sources / name) for name in SOURCES],
            # C++20 from PyTorch 2.14 on (its headers need it), C++17 before, whatever this
            # torch's cpp_extension defaults to: the adapter is checked with exactly these.
            extra_cflags=["-O2", f"-std={_torch_versions.cxx_standard(torch_version)}"],
            extra_include_paths=[str(sources), str(header_dir()), str(cuda.include)],
            extra_ldflags=_link_flags(cpp_extension, library, cuda),
            build_directory=build_dir,
            with_cuda=False,
            is_python_module=False,
            verbose=verbose)
    except NativeUnavailable:
        raise
    except Exception as e:  # compiler errors, no CUDA_HOME, ...: all mean "not here"
        tail = "\n".join(str(e).strip().splitlines()[-15:])
        raise NativeUnavailable(f"building the adapter failed: {tail}") from e
    if isinstance(built, str) and Path(built).is_file():
        return Path(built)
    # Older torch returns nothing: the library is the newest build of the extension.
    root = Path(build_dir) if build_dir else Path(
        cpp_extension._get_build_directory(EXTENSION_NAME, verbose))  # noqa: SLF001
    found = sorted(root.glob(f"{EXTENSION_NAME}*.so"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise NativeUnavailable(f"the adapter was built but no {EXTENSION_NAME}*.so is in {root}")
    return found[-1]


_lock = threading.Lock()
_handle: Optional[ctypes.CDLL] = None
_handle_path: Optional[Path] = None


def load(path: Path) -> ctypes.CDLL:
    """Loads the adapter at `path` (once) and declares its C entry points."""
    global _handle, _handle_path
    with _lock:
        if _handle is not None:
            return _handle
        _library.load()
        try:
            handle = ctypes.CDLL(str(path))
        except OSError as e:
            raise NativeUnavailable(f"cannot load the adapter {path}: {e}") from e
        for name, restype, argtypes in (
                ("vramcache_torch_install", ctypes.c_int, [ctypes.c_char_p]),
                ("vramcache_torch_is_installed", ctypes.c_int, []),
                ("vramcache_torch_last_error", ctypes.c_char_p, []),
                ("vramcache_torch_built_for", ctypes.c_char_p, [])):
            try:
                function = getattr(handle, name)
            except AttributeError as e:
                raise NativeUnavailable(f"{path} is not vramcache's adapter (no {name})") from e
            function.restype, function.argtypes = restype, argtypes
        _handle, _handle_path = handle, path
        return handle


def install(conf: Optional[str] = None, verbose: bool = False) -> NativeAllocator:
    """Builds and loads the adapter, then makes it PyTorch's CUDA allocator.

    NativeUnavailable when the adapter cannot be had here; RuntimeError (nothing installed) when
    PyTorch refuses it (CUDA already initialized) or `conf` is bad."""
    path = build(verbose)
    handle = load(path)
    if handle.vramcache_torch_install(None if conf is None else conf.encode("utf-8")) != 0:
        why = handle.vramcache_torch_last_error().decode("utf-8", "replace")
        raise _library.VramcacheError(why)
    return NativeAllocator(path, handle)


def is_installed() -> bool:
    """Whether the adapter is loaded and PyTorch's CUDA allocator in this process."""
    with _lock:
        handle = _handle
    return handle is not None and handle.vramcache_torch_is_installed() == 1
