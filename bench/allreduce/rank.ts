/**
 * One benchmark rank: listens, forms the rings it is told to, and times all-reduces.
 * `rank.ts CERT KEY CA` also listens with TLS on a second endpoint, so that one run
 * measures the same ranks with and without TLS.
 */
import { readFileSync } from 'node:fs';
import { createRing, listen, type Ring, type RingEndpoint } from '@ringtrain/allreduce';
import type { FromRank, ToRank, Transport } from './protocol.js';

const send = (msg: FromRank): void => void process.send?.(msg);

const [certFile, keyFile, caFile] = process.argv.slice(2);
const maxSegmentBytes = 16 * 1024 * 1024;
const endpoints: Partial<Record<Transport, RingEndpoint>> = { plain: await listen({ maxSegmentBytes }) };
if (certFile && keyFile && caFile) {
  endpoints.tls = await listen({ maxSegmentBytes, tls: { cert: readFileSync(certFile), key: readFileSync(keyFile), ca: readFileSync(caFile) } });
}
const rings: Partial<Record<Transport, Ring>> = {};
send({ type: 'listening', port: endpoints.plain!.port, ...(endpoints.tls ? { tlsPort: endpoints.tls.port } : {}) });

process.on('message', (msg: ToRank) => {
  void handle(msg).catch((err: unknown) => send({ type: 'error', message: String(err) }));
});

async function handle(msg: ToRank): Promise<void> {
  switch (msg.type) {
    case 'form':
      rings[msg.transport] = await createRing({ endpoint: endpoints[msg.transport]!, membership: msg.membership, segmentBytes: msg.segmentBytes, sendSlots: msg.sendSlots, opTimeoutMs: 120_000 });
      send({ type: 'formed' });
      return;
    case 'run': {
      const r = rings[msg.transport]!;
      const data = msg.float64 ? new Float64Array(msg.bytes / 4) : new Float32Array(msg.bytes / 4);
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
      await Promise.all(Object.values(rings).map((r) => r.close()));
      await Promise.all(Object.values(endpoints).map((e) => e.close()));
      process.exit(0);
  }
}
