/**
 * The peers bench/allreduce measures ringtrain's ring against, in the same run, on the
 * same loopback: PyTorch's gloo (Debian's python3-torch) and Open MPI over TCP (Debian's
 * openmpi-bin and python3-mpi4py), each timed as the ring is (peers/gloo.py,
 * peers/mpi.py): a barrier, then one all-reduce of float32, the slowest rank's time per
 * iteration, the median of those. A peer that is not installed is skipped and said so,
 * with the packages that bring it.
 *
 * Debian's python3 is used by path (/usr/bin/python3): a pyenv or venv python first on
 * PATH does not see Debian's packages.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export type PeerName = 'gloo' | 'openmpi-tcp';

export interface Peer {
  readonly name: PeerName;
  readonly version: string;
}

export interface Missing {
  readonly name: PeerName;
  readonly why: string;
  readonly install: string;
}

const PYTHON = '/usr/bin/python3';
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

function quiet(cmd: string, args: readonly string[]): string | null {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 }).trim();
  } catch {
    return null;
  }
}

/** Which peers are installed here, and how to install the others. */
export function findPeers(): { found: Peer[]; missing: Missing[] } {
  const found: Peer[] = [];
  const missing: Missing[] = [];
  const torch = quiet(PYTHON, ['-c', 'import torch, torch.distributed as d; assert d.is_gloo_available(); print(torch.__version__)']);
  if (torch) found.push({ name: 'gloo', version: `PyTorch ${torch}` });
  else missing.push({ name: 'gloo', why: `${PYTHON} cannot import torch with gloo`, install: 'apt-get install python3-torch' });
  const mpi = quiet(PYTHON, ['-c', 'from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0].split(",")[0])']);
  const mpirun = quiet('mpirun', ['--version']);
  if (mpi && mpirun) found.push({ name: 'openmpi-tcp', version: mpi.replace(/\u0000/g, '') });
  else missing.push({ name: 'openmpi-tcp', why: mpirun ? `${PYTHON} cannot import mpi4py` : 'no mpirun', install: 'apt-get install openmpi-bin python3-mpi4py' });
  return { found, missing };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Runs `cmd` to its end; resolves with its stdout, rejects with its stderr's tail. */
function run(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}: ${err}`))));
  });
}

/** Median milliseconds of the slowest rank per iteration, by size in bytes, from the peer scripts' JSON lines. */
function medians(output: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of output.split('\n').filter((l) => l.startsWith('{'))) {
    const r = JSON.parse(line) as { bytes: number; ms: number[][] };
    const slowest = r.ms[0]!.map((_, i) => Math.max(...r.ms.map((rank) => rank[i]!)));
    out.set(r.bytes, median(slowest));
  }
  return out;
}

/** Times `peer`'s all-reduce at `world` ranks for each of `sizes` (bytes): median ms by size. */
export async function measurePeer(peer: PeerName, world: number, sizes: readonly number[], iterations: number, warmup: number): Promise<Map<number, number>> {
  const args = [sizes.join(','), String(iterations), String(warmup)];
  if (peer === 'gloo') {
    const port = await freePort();
    const ranks = Array.from({ length: world }, (_, rank) => run(PYTHON, [here('peers/gloo.py'), String(rank), String(world), String(port), ...args]));
    const [first] = await Promise.all(ranks);
    return medians(first!);
  }
  // Open MPI's TCP transport on loopback only (no shared memory), one slot per rank even
  // past the core count, as root if need be (CI runs as root).
  const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  const mpi = ['-n', String(world), '--oversubscribe', ...root, '--mca', 'pml', 'ob1', '--mca', 'btl', 'tcp,self', '--mca', 'btl_tcp_if_include', 'lo'];
  return medians(await run('mpirun', [...mpi, PYTHON, here('peers/mpi.py'), ...args]));
}
