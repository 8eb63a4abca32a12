"""One DDP training step per rank with vramcache as each rank's allocator (native adapter), for
tests/gpu/test_torch_native.py::test_torchrun_two_processes_each_within_its_budget:

    torchrun --standalone --nproc_per_node=2 tests/gpu/torch_ddp/ddp_step.py

Every rank uses GPU 0 (the test machine has one) with its own budget: VRAMCACHE_DDP_BUDGETS_MIB
lists them by rank (default 768,512). The backend is gloo: NCCL refuses two ranks on one device.
Each rank prints one line, "DDP {json}": its budget, peak reserved bytes, a checksum of its
parameters after the steps (equal on both ranks when DDP kept them in step), and whether an
over-budget allocation raised torch.OutOfMemoryError with vramcache's message.
"""

import json
import os

import vramcache

rank = int(os.environ["RANK"])
budgets = [int(b) for b in os.environ.get("VRAMCACHE_DDP_BUDGETS_MIB", "768,512").split(",")]
budget = budgets[rank % len(budgets)] << 20
vramcache.install(conf=f"device:cuda,budget:{budget >> 20}MiB", native=True)  # before CUDA starts

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

torch.cuda.set_device(0)
dist.init_process_group("gloo")
torch.use_deterministic_algorithms(True)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 1024), torch.nn.ReLU(),
                            torch.nn.Linear(1024, 16)).cuda()
ddp = torch.nn.parallel.DistributedDataParallel(model)
optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
generator = torch.Generator(device="cuda").manual_seed(1 + rank)  # different data per rank
data = torch.randn(128, 256, device="cuda", generator=generator)
target = torch.randint(0, 16, (128,), device="cuda", generator=generator)
for _ in range(2):
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(ddp(data), target)
    loss.backward()  # gradients all-reduced across the ranks
    optimizer.step()
torch.cuda.synchronize()
checksum = sum(float(p.double().sum()) for p in model.parameters())

try:
    torch.empty(budget + (64 << 20), dtype=torch.uint8, device="cuda")
except torch.OutOfMemoryError as e:
    oom_has_vramcache = "vramcache" in str(e)
else:
    oom_has_vramcache = False

print("DDP " + json.dumps({
    "rank": rank, "budget": budget, "allocator": torch.cuda.get_allocator_backend(),
    "max_reserved": torch.cuda.max_memory_reserved(), "param_checksum": checksum,
    "oom_message_has_vramcache": oom_has_vramcache}), flush=True)
dist.barrier()
dist.destroy_process_group()
