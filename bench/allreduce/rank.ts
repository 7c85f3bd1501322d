/** One benchmark rank: listens, forms the ring it is told to, and times all-reduces. */
import { createRing, listen, type Ring } from '@ringtrain/allreduce';
import type { FromRank, ToRank } from './protocol.js';

const send = (msg: FromRank): void => void process.send?.(msg);

const endpoint = await listen({ maxSegmentBytes: 16 * 1024 * 1024 });
let ring: Ring | undefined;
send({ type: 'listening', port: endpoint.port });

process.on('message', (msg: ToRank) => {
  void handle(msg).catch((err: unknown) => send({ type: 'error', message: String(err) }));
});

async function handle(msg: ToRank): Promise<void> {
  switch (msg.type) {
    case 'form':
      ring = await createRing({ endpoint, membership: msg.membership, segmentBytes: msg.segmentBytes, sendSlots: msg.sendSlots, opTimeoutMs: 120_000 });
      send({ type: 'formed' });
      return;
    case 'run': {
      const r = ring!;
      const data = new Float32Array(msg.bytes / 4);
      for (let i = 0; i < data.length; i++) data[i] = (i % 7) - 3;
      for (let i = 0; i < msg.warmup; i++) await r.allReduce(data);
      const ms: number[] = [];
      const userMs: number[] = [];
      const systemMs: number[] = [];
      const faults: number[] = [];
      for (let i = 0; i < msg.iterations; i++) {
        await r.barrier();
        const cpu = process.cpuUsage();
        const before = process.resourceUsage().minorPageFault;
        const t = performance.now();
        await r.allReduce(data, { step: i });
        ms.push(performance.now() - t);
        const used = process.cpuUsage(cpu);
        userMs.push(used.user / 1000);
        systemMs.push(used.system / 1000);
        faults.push(process.resourceUsage().minorPageFault - before);
      }
      send({ type: 'times', ms, userMs, systemMs, faults });
      return;
    }
    case 'exit':
      await ring?.close();
      await endpoint.close();
      process.exit(0);
  }
}
