/**
 * A ring member in its own process, driven by the tests over IPC: it listens at once
 * (reporting its port), then forms rings and runs all-reduces as told. It exits when
 * the test process goes away.
 */
import { createRing, isRingError, listen, type Ring } from '@ringtrain/allreduce';
import { checkSum, digest, input } from './allreduce-data.js';
import type { FromRank, ToRank } from './allreduce-protocol.js';

const send = (msg: FromRank): void => void process.send?.(msg);
const endpoint = await listen({ handshakeTimeoutMs: 5000 });
let ring: Ring | undefined;
let world = 1;
let rank = 0;

process.on('disconnect', () => process.exit(0));
process.on('message', (msg: ToRank) => {
  handle(msg).catch((err: unknown) => send({ type: 'error', code: isRingError(err) ? err.code : 'UNKNOWN', message: String(err) }));
});
send({ type: 'listening', port: endpoint.port });

async function handle(msg: ToRank): Promise<void> {
  switch (msg.type) {
    case 'form':
      await ring?.close();
      ({ world, rank } = msg.membership);
      ring = await createRing({ endpoint, membership: msg.membership, connectTimeoutMs: 10_000, ...msg.tuning });
      send({ type: 'formed' });
      return;
    case 'allReduce': {
      const data = input(msg.kind, msg.seed, rank, msg.length);
      await ring!.allReduce(data, { step: msg.seed });
      send({ type: 'reduced', ok: checkSum(msg.kind, msg.seed, world, data), digest: digest(data) });
      return;
    }
    case 'loop': {
      const data = new Float32Array(msg.length);
      let ops = 0;
      for (;;) {
        try {
          await ring!.allReduce(data, { step: ops });
          ops++;
        } catch (err) {
          send({ type: 'loopEnded', code: isRingError(err) ? err.code : String(err), at: Date.now(), ops });
          return;
        }
      }
    }
    case 'close':
      await ring?.close();
      ring = undefined;
      send({ type: 'closed' });
      return;
  }
}
