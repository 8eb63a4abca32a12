#!/usr/bin/env python3
"""Stages NVIDIA's compute-sanitizer for the GPU machine, from PyPI's nvidia-cuda-sanitizer-api
wheel, as one compressed archive that tests/gpu/run.sh unpacks there.

The local CUDA toolkit has no compute-sanitizer and the GPU machine has no network, so
tests/gpu/build.sh calls this script and copies the archive into the carried folder. The
unpacked tool is about 36 MB, too much next to the binaries in the 64 MiB carry; as .tar.xz it
is about 7 MB.

Which wheel: the newest 13.0.x whose compute-sanitizer can launch a program, else the newest
13.x that can. A runnable compute-sanitizer needs, in its own directory, the launcher it
execs first (TreeLauncherSubreaper), the libraries it preloads into the target
(libInterceptorInjectionTarget.so, libTreeLauncher*.so) and libsanitizer-collection.so. The
13.0.x wheels (13.0.48, 13.0.85) ship only the binary and libraries split over bin/ and lib/,
without TreeLauncherSubreaper: that binary starts (--version) but fails to launch any target
("Execve of subreaper failed"); so do 13.1.118 and 13.2.87. 13.5.25 ships a complete
compute-sanitizer/ directory (13.3.x and 13.4.x not checked). Newer sanitizers are meant to
support older drivers (their release notes name a driver only for single features), but that
has not been tried on a GPU yet.

Usage: stage_compute_sanitizer.py OUTPUT_DIR
Writes OUTPUT_DIR/compute-sanitizer.tar.xz (one top-level directory, compute-sanitizer/) and
OUTPUT_DIR/compute-sanitizer.version; does nothing when both exist. Offline or on any failure
it prints why and exits 0 without them: the sanitizer runs are optional.
"""
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile

PACKAGE = "nvidia-cuda-sanitizer-api"
INDEX = f"https://pypi.org/pypi/{PACKAGE}/json"
PLATFORM_TAG = "manylinux_2_25_x86_64"  # the GPU machine: x86_64 Linux
# Next to the binary, what it execs or preloads to launch a target (see above).
REQUIRED = ("compute-sanitizer", "TreeLauncherSubreaper", "libInterceptorInjectionTarget.so",
            "libTreeLauncherTargetInjection.so", "libTreeLauncherTargetUpdatePreloadInjection.so",
            "libsanitizer-collection.so")
# Not needed to run the tool: documentation and the 32-bit launcher.
SKIPPED_SUBDIRS = ("docs/", "x86/")
TIMEOUT_S = 120


def say(message):
    print(f"stage_compute_sanitizer: {message}", flush=True)


def release_key(version):
    return tuple(int(part) for part in version.split("."))


def candidates(releases):
    """13.0.x newest first, then every other 13.x newest first (final releases only)."""
    finals = [v for v in releases if re.fullmatch(r"13\.\d+\.\d+", v)]
    thirteen_zero = sorted((v for v in finals if v.startswith("13.0.")), key=release_key,
                           reverse=True)
    later = sorted((v for v in finals if not v.startswith("13.0.")), key=release_key,
                   reverse=True)
    return thirteen_zero + later


def wheel_file(files):
    for entry in files:
        if entry["filename"].endswith(f"-{PLATFORM_TAG}.whl"):
            return entry
    return None


def tool_directory(names):
    """The wheel directory holding a complete compute-sanitizer, or None."""
    for name in names:
        if not name.endswith("/compute-sanitizer"):
            continue
        directory = name[: -len("compute-sanitizer")]
        if all(directory + required in names for required in REQUIRED):
            return directory
    return None


def stage(wheel_bytes, directory, version, output_dir):
    with tempfile.TemporaryDirectory() as scratch:
        tool = os.path.join(scratch, "compute-sanitizer")
        with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as wheel:
            for info in wheel.infolist():
                if not info.filename.startswith(directory) or info.is_dir():
                    continue
                relative = info.filename[len(directory):]
                if relative.startswith(SKIPPED_SUBDIRS):
                    continue
                target = os.path.join(tool, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with wheel.open(info) as source, open(target, "wb") as sink:
                    sink.write(source.read())
                # Wheels keep no Unix modes that matter here: the executables need +x.
                os.chmod(target, 0o755)
        started = subprocess.run([os.path.join(tool, "compute-sanitizer"), "--version"],
                                 capture_output=True, text=True, timeout=60)
        if started.returncode != 0:
            say(f"{version}: compute-sanitizer --version failed: {started.stderr.strip()}")
            return False
        say(f"{version}: " + " ".join(started.stdout.split("\n")[-2:]).strip())
        archive = os.path.join(output_dir, "compute-sanitizer.tar.xz")
        with tarfile.open(archive + ".partial", "w:xz") as tar:
            tar.add(tool, arcname="compute-sanitizer")
        os.replace(archive + ".partial", archive)
        with open(os.path.join(output_dir, "compute-sanitizer.version"), "w") as out:
            out.write(f"{PACKAGE} {version}\n")
        return True


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    output_dir = sys.argv[1]
    os.makedirs(output_dir, exist_ok=True)
    if all(os.path.exists(os.path.join(output_dir, name))
           for name in ("compute-sanitizer.tar.xz", "compute-sanitizer.version")):
        say("cached: " + open(os.path.join(output_dir, "compute-sanitizer.version")).read().strip())
        return 0
    try:
        with urllib.request.urlopen(INDEX, timeout=TIMEOUT_S) as response:
            releases = json.load(response)["releases"]
    except Exception as error:  # offline, or PyPI unreachable: stage nothing
        say(f"PyPI unreachable ({error}); compute-sanitizer not staged")
        return 0
    for version in candidates(releases):
        entry = wheel_file(releases[version])
        if entry is None:
            continue
        # The index may give a relative address; it is relative to the index's own.
        url = urllib.parse.urljoin(INDEX, entry["url"])
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                wheel_bytes = response.read()
        except Exception as error:
            say(f"{version}: download failed ({error}); compute-sanitizer not staged")
            return 0
        if hashlib.sha256(wheel_bytes).hexdigest() != entry["digests"]["sha256"]:
            say(f"{version}: sha256 mismatch; skipped")
            continue
        with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as wheel:
            directory = tool_directory(set(wheel.namelist()))
        if directory is None:
            say(f"{version}: no runnable compute-sanitizer (no TreeLauncherSubreaper beside it)")
            continue
        if stage(wheel_bytes, directory, version, output_dir):
            return 0
    say("no wheel with a runnable compute-sanitizer; not staged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
