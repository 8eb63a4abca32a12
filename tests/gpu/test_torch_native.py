"""vramcache as PyTorch's allocator through the native adapter (torch_plugin/native), on a GPU.

Skips without PyTorch or a GPU. The adapter is JIT-compiled once per session (into
build/torch-extensions, reused by later runs), then every scenario runs in its own interpreter:
install() must precede CUDA initialization, and PyTorch cannot swap its allocator back.
Run: VRAMCACHE_LIBRARY=build/gpu/allocator/libvramcache.so python3 -m pytest tests/gpu
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "torch_plugin"
sys.path.insert(0, str(PLUGIN))
from vramcache import _library  # noqa: E402

EXTENSIONS_DIR = REPO / "build" / "torch-extensions"
SCENARIO_TIMEOUT_S = 90
COMPILE_TIMEOUT_S = 150  # torch.compile's first run (Inductor + Triton); skipped past this


def _environment(conf):
    try:
        library = _library.find_library()
    except _library.LibraryNotFoundError as e:
        pytest.skip(str(e))
    env = dict(os.environ, VRAMCACHE_LIBRARY=str(library), PYTHONPATH=str(PLUGIN),
               TORCH_EXTENSIONS_DIR=str(EXTENSIONS_DIR), CUBLAS_WORKSPACE_CONFIG=":4096:8")
    for name in ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF", "VRAMCACHE_NATIVE",
                 "VRAMCACHE_NATIVE_LIBRARY", "VRAMCACHE_CONF"):
        env.pop(name, None)
    if conf is not None:
        env["VRAMCACHE_CONF"] = conf
    return env


@pytest.fixture(scope="session", autouse=True)
def adapter():
    """Builds the adapter once (a later scenario's build finds it up to date)."""
    EXTENSIONS_DIR.mkdir(parents=True, exist_ok=True)
    code = "from vramcache import _native; print(_native.build())"
    result = subprocess.run([sys.executable, "-c", code], env=_environment("device:cuda"),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"building the adapter failed:\n{result.stderr[-6000:]}"
    return Path(result.stdout.strip().splitlines()[-1])


def run(body, conf="device:cuda", vramcache=True, timeout=SCENARIO_TIMEOUT_S):
    """Runs `body` in a fresh interpreter, after installing the native adapter (or not)."""
    prologue = "import gc, json, sys, torch\nMiB = 1 << 20\n"
    if vramcache:
        prologue += ("import vramcache\nfrom vramcache import _native\n"
                     "allocator = vramcache.install(native=True)\n"
                     "assert _native.is_installed() and allocator.kind == 'native'\n")
    result = subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(body)],
                            env=_environment(conf), capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


TRAIN = textwrap.dedent("""
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True

    def train(steps=12):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(),
                                    torch.nn.Linear(256, 10)).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        data = torch.randn(512, 64, device="cuda")
        target = torch.randint(0, 10, (512,), device="cuda")
        losses = []
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(data), target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item().hex())
        return losses
""")


def test_training_is_bitwise_identical_to_pytorchs_allocator():
    # PyTorch's own allocator twice (the run is deterministic), then vramcache.
    native = json.loads(run(TRAIN + "print(json.dumps([train(), train()]))",
                            vramcache=False).strip().splitlines()[-1])
    assert native[0] == native[1], "the training run is not deterministic under PyTorch itself"
    ours = json.loads(run(TRAIN + textwrap.dedent("""
        assert torch.cuda.get_allocator_backend() == "vramcache"
        print(json.dumps(train()))
    """)).strip().splitlines()[-1])
    assert ours == native[0]
    assert float.fromhex(ours[-1]) < float.fromhex(ours[0])  # it did learn


def test_memory_functions_snapshot_and_history():
    out = run("""
        assert torch.cuda.get_allocator_backend() == "vramcache"
        # Before the first allocation vramcache can still be told to record its history.
        torch.cuda.memory._record_memory_history(max_entries=10000)
        base = torch.cuda.memory_stats().get("requested_bytes.all.current", 0)
        tensors = [torch.empty(n, dtype=torch.uint8, device="cuda")
                   for n in (1, 511, 4096, 100_000, 3 * MiB + 7)]
        tensors.append(torch.ones(1000, 3, device="cuda"))
        live = sum(t.untyped_storage().nbytes() for t in tensors)
        stats = torch.cuda.memory_stats()
        assert stats["requested_bytes.all.current"] == base + live, (stats, live)
        assert torch.cuda.memory_allocated() == stats["allocated_bytes.all.current"]
        assert torch.cuda.memory_allocated() == vramcache.memory_allocated()
        assert torch.cuda.max_memory_allocated() >= torch.cuda.memory_allocated() > 0
        assert torch.cuda.memory_reserved() >= torch.cuda.memory_allocated()
        assert stats["allocation.all.current"] >= len(tensors)
        summary = torch.cuda.memory_summary()
        assert "Allocated memory" in summary and "Requested memory" in summary, summary

        snapshot = torch.cuda.memory._snapshot()
        live_blocks = {b["address"] for s in snapshot["segments"] for b in s["blocks"]
                       if b["state"] == "active_allocated"}
        assert all(t.data_ptr() in live_blocks for t in tensors), snapshot["segments"]
        allocs = {e["addr"] for e in snapshot["device_traces"][0] if e["action"] == "alloc"}
        assert all(t.data_ptr() in allocs for t in tensors)
        import os, tempfile
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "snapshot.pickle")
            torch.cuda.memory._dump_snapshot(path)
            assert os.path.getsize(path) > 0
            import pickle
            with open(path, "rb") as f:
                dumped = pickle.load(f)
        # What the memory_viz tools (pytorch.org/memory_viz, torch.cuda._memory_viz) read.
        from torch.cuda import _memory_viz
        assert {"segments", "device_traces"} <= set(dumped), dumped.keys()
        for name in ("segsum", "trace", "trace_plot", "segment_plot"):
            text = getattr(_memory_viz, name)(dumped)
            assert isinstance(text, str) and text, name
        try:  # once in use, vramcache's history cannot be turned off: said, not ignored
            torch.cuda.memory._record_memory_history(enabled=None)
        except RuntimeError as e:
            assert "cannot stop recording" in str(e), e
        else:
            raise AssertionError("stopping the history was accepted")

        torch.cuda.reset_peak_memory_stats()
        assert torch.cuda.max_memory_allocated() == torch.cuda.memory_allocated()
        torch.cuda.reset_accumulated_memory_stats()
        assert torch.cuda.memory_stats()["allocation.all.allocated"] == 0
        raw = torch.cuda.caching_allocator_alloc(12345)
        assert torch.cuda.memory_stats()["requested_bytes.all.current"] == base + live + 12345
        torch.cuda.caching_allocator_delete(raw)
        del tensors
        gc.collect()
        assert torch.cuda.memory_stats()["requested_bytes.all.current"] == base
        free, total = torch.cuda.mem_get_info()
        assert 0 < free <= total
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_record_stream_is_honoured():
    # A pattern written on a side stream must survive a reuse attempted while that stream still
    # works on the block: x is freed (after record_stream) while the side stream sleeps, the
    # default stream then allocates and overwrites the same size, and the side stream's copy of
    # x, taken after its sleep, must still read the pattern.
    #
    # The first GPU run failed at this scenario's first assertion (block state right after the
    # free). The pending state itself is the allocator's bookkeeping (no timing involved), but
    # the old scenario's sleep overlapped with the lazy loading of the add kernel launched after
    # it, so the side stream could be done before the reuse check; and one failed assertion hid
    # the rest. Here every kernel is loaded first, the side stream is checked to still be busy
    # at each point that needs it, and a failure prints the block's segment and the stats.
    out = run("""
        side = torch.cuda.Stream()
        n = 8 * MiB
        # Load every kernel used below (lazy module loading would otherwise eat the sleep).
        warm = torch.zeros(n, dtype=torch.uint8, device="cuda")
        with torch.cuda.stream(side):
            torch.cuda._sleep(1000)
            warm.fill_(1)
            torch.empty_like(warm).copy_(warm)
        torch.cuda.synchronize()
        del warm

        def describe(address):
            snapshot = torch.cuda.memory._snapshot()
            for s in snapshot["segments"]:
                if s["address"] <= address < s["address"] + s["total_size"]:
                    return json.dumps({k: v for k, v in s.items() if k != "frames"})
            return "no segment holds %#x" % address

        x = torch.zeros(n, dtype=torch.uint8, device="cuda")
        out = torch.empty(n, dtype=torch.uint8, device="cuda")
        old = x.data_ptr()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            torch.cuda._sleep(1_000_000_000)  # ~0.5 s on an H100
            x.fill_(0x5A)
            out.copy_(x)
        x.record_stream(side)
        del x
        assert not side.query(), "the side stream finished before the free: sleep longer"
        states = {b["address"]: b["state"] for s in torch.cuda.memory._snapshot()["segments"]
                  for b in s["blocks"]}
        assert states.get(old) == "active_pending_free", (states.get(old), describe(old),
                                                          torch.cuda.memory_stats())
        y = torch.empty(n, dtype=torch.uint8, device="cuda")
        y.fill_(0xA5)  # on the default stream: would clobber x if y had x's memory
        busy = not side.query()
        assert y.data_ptr() != old or not busy, ("reused while the side stream works on it",
                                                  describe(old))
        assert busy, "the side stream finished before the reuse check: sleep longer"
        torch.cuda.synchronize()
        assert bool((out == 0x5A).all()), "the side stream's pattern was overwritten"
        assert bool((y == 0xA5).all())
        del y, out
        # Once the side stream is done the block is free again: the same size gets it back.
        z = torch.empty(n, dtype=torch.uint8, device="cuda")
        states = {b["address"]: b["state"] for s in torch.cuda.memory._snapshot()["segments"]
                  for b in s["blocks"]}
        assert states.get(old) in ("inactive", "active_allocated"), (states.get(old),
                                                                     describe(old))
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_empty_cache_returns_memory():
    out = run("""
        keep = torch.ones(MiB, device="cuda")  # a live block: its segment stays
        big = [torch.empty(64 * MiB, dtype=torch.uint8, device="cuda") for _ in range(3)]
        for b in big:
            b.fill_(1)
        del big, b  # `b` still held the last one
        torch.cuda.synchronize()
        before = torch.cuda.memory_reserved()
        free_before, _ = torch.cuda.mem_get_info()
        torch.cuda.empty_cache()
        after = torch.cuda.memory_reserved()
        free_after, _ = torch.cuda.mem_get_info()
        detail = (before, after, free_before, free_after, torch.cuda.memory_stats())
        assert after <= before - 3 * 64 * MiB, detail
        assert after >= torch.cuda.memory_allocated() > 0, detail
        assert free_after >= free_before + 3 * 64 * MiB - 8 * MiB, detail  # the device has it
        assert keep.sum().item() == MiB  # the live block is untouched
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_memory_fraction_caps_and_out_of_memory_is_torchs_error():
    out = run("""
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(256 * MiB / total)
        assert abs(torch.cuda.get_per_process_memory_fraction() - 256 * MiB / total) < 1e-6
        seen = []
        torch._C._cuda_attach_out_of_memory_observer(lambda *args: seen.append(args))
        kept = torch.empty(100 * MiB, dtype=torch.uint8, device="cuda")
        try:
            torch.empty(512 * MiB, dtype=torch.uint8, device="cuda")
        except torch.OutOfMemoryError as e:
            message = str(e)
        else:
            raise AssertionError("512 MiB fit in a 256 MiB cap")
        assert torch.OutOfMemoryError is torch.cuda.OutOfMemoryError
        assert "out of memory" in message and "vramcache" in message, message
        assert seen and seen[-1][0] == 0 and seen[-1][1] == 512 * MiB, seen
        assert torch.cuda.memory_stats()["num_ooms"] == 1
        assert torch.cuda.memory_reserved() <= 256 * MiB
        assert vramcache.last_oom()["requested_bytes"] == 512 * MiB
        after = torch.ones(MiB, device="cuda")  # still usable after the error
        assert after.sum().item() == MiB
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_cudnn_benchmark_convolution():
    out = run("""
        torch.backends.cudnn.benchmark = True  # asks the allocator for its largest block
        torch.backends.cudnn.allow_tf32 = False
        torch.manual_seed(0)
        conv = torch.nn.Conv2d(3, 16, 3, padding=1).cuda()
        x = torch.randn(8, 3, 64, 64, device="cuda", requires_grad=True)
        for _ in range(2):
            y = conv(x)
            y.sum().backward()
        reference = torch.nn.functional.conv2d(x.detach().cpu(), conv.weight.detach().cpu(),
                                               conv.bias.detach().cpu(), padding=1)
        torch.testing.assert_close(y.detach().cpu(), reference, atol=1e-3, rtol=1e-3)
        assert torch.isfinite(x.grad).all()
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_cuda_graphs_and_memory_pools():
    out = run("""
        static_in = torch.randn(4096, device="cuda")
        warmup = torch.cuda.Stream()
        warmup.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(warmup):
            (static_in * 2 + 1).sin()
        torch.cuda.current_stream().wait_stream(warmup)


        graph = torch.cuda.CUDAGraph()
        captured = []
        with torch.cuda.graph(graph):  # allocations come from the graph's private pool
            doubled = static_in * 2
            captured.append(doubled.data_ptr())
            static_out = (doubled + 1).sin()
            captured.append(static_out.data_ptr())
            del doubled  # freed inside the capture: stays the graph's, replays write it
        # The private pool's live blocks are exactly the graph's live outputs (torch.compile's
        # cudagraph trees assert this through the same call).
        assert torch._C._cuda_checkPoolLiveAllocations(0, graph.pool(), {static_out.data_ptr()})
        assert not torch._C._cuda_checkPoolLiveAllocations(0, graph.pool(), set())
        # Memory kept private: allocations outside the graph never get the graph's blocks,
        # not even the one freed during the capture.
        outside = [torch.empty_like(static_in) for _ in range(16)]
        assert not {t.data_ptr() for t in outside} & set(captured), captured
        del outside
        shared = torch.cuda.CUDAGraph()
        with torch.cuda.graph(shared, pool=graph.pool()):
            tripled = static_out * 3
        for value in (0.5, 1.5, -2.0):
            static_in.fill_(value)
            graph.replay()
            shared.replay()
            expected = torch.full_like(static_out, value * 2 + 1).sin()
            torch.testing.assert_close(static_out, expected)
            torch.testing.assert_close(tripled, expected * 3)
        torch.cuda.synchronize()
        allocated_with_graphs = torch.cuda.memory_allocated()
        reserved_with_graphs = torch.cuda.memory_reserved()
        # Destroying the graphs releases their pool; once its tensors are gone too, the pool's
        # segments go back to the device.
        del graph, shared, static_out, tripled
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        assert torch.cuda.memory_allocated() <= allocated_with_graphs - 2 * 4096 * 4
        assert torch.cuda.memory_reserved() < reserved_with_graphs

        pool = torch.cuda.MemPool()
        assert pool.use_count() == 1
        with torch.cuda.use_mem_pool(pool):
            pooled = torch.ones(MiB, device="cuda")
        assert pool.use_count() == 1
        assert pooled.sum().item() == MiB
        del pooled, pool
        gc.collect()
        torch.cuda.synchronize()
        print("ok")
    """)
    assert out.strip().endswith("ok")


def test_install_after_cuda_initialization_is_refused():
    out = run("""
        import vramcache
        from vramcache import _native
        torch.ones(1, device="cuda")  # PyTorch's own allocator now serves CUDA memory
        try:
            _native.install()
        except vramcache.VramcacheError as e:
            assert "before CUDA is initialized" in str(e), e
        else:
            raise AssertionError("installed after CUDA initialization")
        assert not _native.is_installed()
        assert torch.cuda.get_allocator_backend() == "native"
        print("ok")
    """, vramcache=False)
    assert out.strip().endswith("ok")


def test_torch_compile_reduce_overhead():
    try:
        import triton  # noqa: F401
    except ImportError:
        pytest.skip("no triton: torch.compile cannot generate CUDA kernels here")
    try:
        out = run("""
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                        torch.nn.Linear(64, 8)).cuda()
            x = torch.randn(32, 64, device="cuda")
            compiled = torch.compile(model, mode="reduce-overhead")
            with torch.no_grad():
                reference = model(x)
                for _ in range(4):  # warm-up, recording, then replays of the CUDA graph
                    result = compiled(x)
            torch.testing.assert_close(result, reference)
            print("ok")
        """, timeout=COMPILE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.skip(f"torch.compile took over {COMPILE_TIMEOUT_S}s here")
    assert out.strip().endswith("ok")


DDP_SCRIPT = Path(__file__).resolve().parent / "torch_ddp" / "ddp_step.py"
DDP_TIMEOUT_S = 180


def test_torchrun_two_processes_each_within_its_budget():
    # Two ranks on the one GPU (NCCL refuses two ranks on one device, so gloo), each with its
    # own vramcache budget; one DDP step; neither may reserve past its budget.
    env = _environment("device:cuda")
    env["VRAMCACHE_DDP_BUDGETS_MIB"] = "768,512"
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the GPU machine has no network: loopback
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(DDP_SCRIPT)]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=DDP_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"torchrun did not finish in {DDP_TIMEOUT_S}s:\n{e.stdout}\n{e.stderr}")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-6000:]}"
    reports = [json.loads(line[len("DDP "):]) for line in result.stdout.splitlines()
               if line.startswith("DDP ")]
    assert sorted(r["rank"] for r in reports) == [0, 1], result.stdout
    for r in reports:
        assert r["allocator"] == "vramcache", r
        assert 0 < r["max_reserved"] <= r["budget"], r
        assert r["oom_message_has_vramcache"], r
    assert reports[0]["param_checksum"] == reports[1]["param_checksum"], reports  # in step


EXAMPLE_BUILD_TIMEOUT_S = 420


def _build_example(env):
    """The example's binary: prebuilt by tests/gpu/run.sh (VRAMCACHE_LIBTORCH_EXAMPLE_DIR), else
    configured and built here (a minute or more)."""
    prebuilt = os.environ.get("VRAMCACHE_LIBTORCH_EXAMPLE_DIR")
    if prebuilt:
        binary = Path(prebuilt) / "train_mlp"
        assert binary.is_file(), f"the example was not built: see {prebuilt}/build.log"
        return binary
    build = REPO / "build" / "torch-examples"
    configure = ["cmake", "-S", str(REPO / "torch_plugin" / "examples"), "-B", str(build),
                 "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
                 f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
                 f"-DVRAMCACHE_LIBRARY={env['VRAMCACHE_LIBRARY']}"]
    for command in (configure, ["cmake", "--build", str(build)]):
        result = subprocess.run(command, env=env, capture_output=True, text=True,
                                timeout=EXAMPLE_BUILD_TIMEOUT_S)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return build / "train_mlp"


@pytest.mark.skipif(os.environ.get("VRAMCACHE_TEST_LIBTORCH_EXAMPLE", "1") == "0",
                    reason="VRAMCACHE_TEST_LIBTORCH_EXAMPLE=0")
def test_libtorch_example_trains():
    env = _environment(None)
    build = _build_example(env).parent
    result = subprocess.run([str(build / "train_mlp"), "budget:2GiB"], env=env,
                            capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "allocator: vramcache" in result.stdout, result.stdout
