"""Open MPI's all-reduce over TCP on loopback (mpi4py), timed as bench/allreduce times ringtrain's ring.

Run by bench/allreduce/peers.ts under `mpirun -n WORLD --mca pml ob1 --mca btl tcp,self
--mca btl_tcp_if_include lo python3 mpi.py SIZES ITERATIONS WARMUP` (SIZES in bytes,
comma-separated); rank 0 prints one JSON line per size with every rank's times, in ms.
"""
import json
import sys

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, world = comm.Get_rank(), comm.Get_size()
sizes = [int(s) for s in sys.argv[1].split(",")]
iterations, warmup = int(sys.argv[2]), int(sys.argv[3])
for size in sizes:
    data = ((np.arange(size // 4) % 7) - 3).astype(np.float32)
    for _ in range(warmup):
        comm.Allreduce(MPI.IN_PLACE, data, op=MPI.SUM)
    times = []
    for _ in range(iterations):
        comm.Barrier()
        t = MPI.Wtime()
        comm.Allreduce(MPI.IN_PLACE, data, op=MPI.SUM)
        times.append((MPI.Wtime() - t) * 1000)
    everyone = comm.gather(times, root=0)
    if rank == 0:
        v = MPI.Get_library_version().splitlines()[0]
        print(json.dumps({"peer": "openmpi-tcp", "version": v, "world": world, "bytes": size, "ms": everyone}), flush=True)
