"""vramcache as PyTorch's allocator through CUDAPluggableAllocator, on a real GPU.

Skips without PyTorch or a GPU. Each scenario runs in its own interpreter, because install()
must precede CUDA initialization and PyTorch cannot swap its allocator back afterwards.
Run: VRAMCACHE_LIBRARY=build/release/allocator/libvramcache.so python3 -m pytest tests/gpu
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

PLUGIN = Path(__file__).resolve().parents[2] / "torch_plugin"
sys.path.insert(0, str(PLUGIN))
from vramcache import _library  # noqa: E402

MiB = 1 << 20


def run_scenario(body: str, conf: str = "device:cuda") -> str:
    try:
        library = _library.find_library()
    except _library.LibraryNotFoundError as e:
        pytest.skip(str(e))
    env = dict(os.environ, VRAMCACHE_LIBRARY=str(library), VRAMCACHE_CONF=conf,
               PYTHONPATH=str(PLUGIN))
    env.pop("PYTORCH_ALLOC_CONF", None)
    env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
    prologue = "import gc, torch, vramcache\nvramcache.install(native=False)\nMiB = 1 << 20\n"
    result = subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(body)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def test_memory_allocated_tracks_live_tensors():
    out = run_scenario("""
        assert vramcache.is_installed()
        base = vramcache.memory_allocated()
        tensors = [torch.empty(MiB, dtype=torch.float32, device="cuda") for _ in range(10)]
        assert vramcache.memory_allocated() == base + 10 * 4 * MiB, vramcache.memory_allocated()
        peak = vramcache.max_memory_allocated()
        assert peak >= base + 40 * MiB
        blocks = {b["address"] for s in vramcache.snapshot()["segments"] for b in s["blocks"]
                  if b["state"] == "active_allocated"}
        assert all(t.data_ptr() in blocks for t in tensors)
        del tensors[:5]
        assert vramcache.memory_allocated() == base + 5 * 4 * MiB
        del tensors
        assert vramcache.memory_allocated() == base
        assert vramcache.max_memory_allocated() == peak
        empty = torch.empty(0, device="cuda")  # size 0: no allocation
        assert vramcache.memory_allocated() == base and empty.numel() == 0
        # PyTorch passes the current stream: with borrowing off (cross_stream:none, set
        # below), a request on a stream with no cache of its own gets a new segment owned by
        # that stream (in virtual-memory mode the default stream's 1 GiB range could have
        # served it by borrowing).
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            on_side = torch.empty(64 * MiB, dtype=torch.uint8, device="cuda")
        owner = [s for s in vramcache.snapshot()["segments"]
                 if s["address"] <= on_side.data_ptr() < s["address"] + s["total_size"]]
        assert owner and owner[0]["stream"] == side.cuda_stream
        print("ok")
    """, conf="device:cuda,cross_stream:none")
    assert out.strip() == "ok"


def test_small_model_trains():
    out = run_scenario("""
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 10)).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        data = torch.randn(512, 64, device="cuda")
        target = data[:, :10].argmax(dim=1)
        losses = []
        for _ in range(60):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(data), target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0], losses
        param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        stats = vramcache.memory_stats()
        assert stats["requested_bytes.all.current"] >= 2 * param_bytes + data.numel() * 4
        assert stats["allocation.all.peak"] > stats["allocation.all.current"] > 0
        assert stats["num_cache_hits"] > 0  # the training loop reuses cached blocks
        before = vramcache.memory_allocated()
        del model, optimizer, loss
        gc.collect()
        assert vramcache.memory_allocated() < before
        torch.cuda.synchronize()
        print(f"ok {losses[0]:.3f} -> {losses[-1]:.3f}")
    """)
    assert out.startswith("ok")


def test_over_budget_allocation_raises_runtime_error():
    out = run_scenario("""
        kept = torch.empty(100 * MiB, dtype=torch.uint8, device="cuda")
        try:
            torch.empty(512 * MiB, dtype=torch.uint8, device="cuda")
        except RuntimeError as e:
            message = str(e)
        else:
            raise AssertionError("512 MiB fit in a 256 MiB budget")
        assert "out of memory" in message and "Verdict" in message, message
        assert "budget" in message, message
        report = vramcache.last_oom()
        assert report["verdict"] == "budget_reached", report
        assert report["requested_bytes"] == 512 * MiB
        assert vramcache.memory_stats()["num_ooms"] == 1
        after = torch.ones(MiB, device="cuda")  # still usable after the error
        assert after.sum().item() == MiB
        print("ok")
    """, conf="device:cuda,budget:256MiB")
    assert out.strip() == "ok"
