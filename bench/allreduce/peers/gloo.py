"""PyTorch's gloo all-reduce on loopback, timed as bench/allreduce times ringtrain's ring.

Run by bench/allreduce/peers.ts: `python3 gloo.py RANK WORLD PORT SIZES ITERATIONS WARMUP`
(SIZES in bytes, comma-separated). Each rank times every all-reduce between barriers;
rank 0 prints one JSON line per size with every rank's times, in milliseconds.
"""
import json
import sys
import time

import torch
import torch.distributed as dist

rank, world, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sizes = [int(s) for s in sys.argv[4].split(",")]
iterations, warmup = int(sys.argv[5]), int(sys.argv[6])
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
for size in sizes:
    data = (torch.arange(size // 4, dtype=torch.float32) % 7) - 3
    for _ in range(warmup):
        dist.all_reduce(data)
    times = []
    for _ in range(iterations):
        dist.barrier()
        t = time.perf_counter()
        dist.all_reduce(data)
        times.append((time.perf_counter() - t) * 1000)
    everyone = [None] * world
    dist.all_gather_object(everyone, times)
    if rank == 0:
        print(json.dumps({"peer": "gloo", "version": torch.__version__, "world": world, "bytes": size, "ms": everyone}), flush=True)
dist.destroy_process_group()
