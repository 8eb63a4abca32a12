"""`python -m vramcache script.py args`: the program runs as __main__ with its own argv, the
configuration comes from VRAMCACHE_CONF or --conf, and bad use fails with a clear message."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import PLUGIN, load_or_skip

SCRIPT = textwrap.dedent("""\
    import sys
    import vramcache
    assert __name__ == "__main__", __name__
    sizes = [int(a) for a in sys.argv[1:]]
    ptrs = [vramcache.caching_allocator_alloc(n) for n in sizes]
    print("argv0", sys.argv[0].endswith("alloc_script.py"))
    print("requested", vramcache.memory_stats()["requested_bytes.all.current"])
    print("allocated", vramcache.memory_allocated())
    print("budget", vramcache.memory_stats()["budget_bytes"])
    for p in ptrs:
        vramcache.caching_allocator_delete(p)
    print("after", vramcache.memory_allocated(), vramcache.max_memory_allocated())
""")


def run_launcher(args, conf=None, cwd=None):
    env = dict(os.environ)
    # The launcher without PyTorch: these runs use the simulated device, which PyTorch's CUDA
    # tensors cannot use, so an installed PyTorch is hidden from them.
    hide_torch = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hide_torch")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (hide_torch, str(PLUGIN), env.get("PYTHONPATH")) if p)
    env.pop("PYTORCH_ALLOC_CONF", None)
    env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
    if conf is None:
        env.pop("VRAMCACHE_CONF", None)
    else:
        env["VRAMCACHE_CONF"] = conf
    return subprocess.run([sys.executable, "-m", "vramcache"] + args, env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def parse(stdout):
    return {line.split()[0]: line.split()[1:] for line in stdout.splitlines()}


@pytest.fixture
def script(tmp_path):
    load_or_skip()
    path = tmp_path / "alloc_script.py"
    path.write_text(SCRIPT)
    return path


def test_runs_script_with_its_arguments(script):
    result = run_launcher([str(script), "1000", "3145728"], conf="device:sim,budget:64MiB")
    assert result.returncode == 0, result.stderr
    out = parse(result.stdout)
    assert out["argv0"] == ["True"]
    assert out["requested"] == [str(1000 + 3145728)]
    assert out["allocated"] == [str(1024 + 3145728)]
    assert out["budget"] == [str(64 << 20)]
    assert out["after"] == ["0", str(1024 + 3145728)]
    if "torch" not in sys.modules:
        assert "PyTorch is not installed" in result.stderr


def test_conf_option_overrides_environment(script):
    result = run_launcher(["--conf", "device:sim,budget:32MiB", str(script)],
                          conf="device:sim,budget:64MiB")
    assert result.returncode == 0, result.stderr
    assert parse(result.stdout)["budget"] == [str(32 << 20)]


def test_summary_at_exit(script):
    result = run_launcher(["--summary", str(script), "4096"], conf="device:sim")
    assert result.returncode == 0, result.stderr
    assert "vramcache CUDA memory summary, device ID 0" in result.stderr
    assert "| Allocations           |       0    |       1    |       1    |       1    |" in (
        result.stderr)


def test_runs_module(script):
    result = run_launcher(["-m", "alloc_script", "2048"], conf="device:sim", cwd=script.parent)
    assert result.returncode == 0, result.stderr
    assert parse(result.stdout)["requested"] == ["2048"]


def test_script_exit_status_and_errors_pass_through(tmp_path):
    load_or_skip()
    failing = tmp_path / "failing.py"
    failing.write_text("import sys\nsys.exit(3)\n")
    assert run_launcher([str(failing)], conf="device:sim").returncode == 3
    raising = tmp_path / "raising.py"
    raising.write_text("raise ValueError('from the script')\n")
    result = run_launcher([str(raising)], conf="device:sim")
    assert result.returncode == 1 and "ValueError: from the script" in result.stderr


def test_bad_configuration_stops_before_the_script(script):
    result = run_launcher([str(script)], conf="device:sim,no_such_key:1")
    assert result.returncode == 1
    assert "cannot install" in result.stderr and "no_such_key" in result.stderr
    assert result.stdout == ""


def test_usage_errors(tmp_path):
    for args, message in (([], "no script or module"), (["--bogus", "x.py"], "unknown option"),
                          (["--conf"], "needs a value"),
                          ([str(tmp_path / "missing.py")], "can't open file")):
        result = run_launcher(args, conf="device:sim")
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "usage:" in result.stderr
    result = run_launcher(["--help"])
    assert result.returncode == 0 and "usage:" in result.stdout
