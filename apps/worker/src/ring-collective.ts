/**
 * The worker's side of a step: libs/train's training loop sums each step's gradient
 * buffer through a Collective; in a cluster that is the generation's ring. The ring
 * tags every operation with the global step, so a frame from another step is never
 * summed into this one.
 *
 * A ring of one has nothing to wait for, so its all-reduce resolves at once; the
 * training loop itself gives the event loop a turn every few milliseconds, so control
 * messages, heartbeats and signals are still handled (libs/train, YIELD_EVERY_MS).
 */
import type { Ring } from '@ringtrain/allreduce';
import type { Collective } from '@ringtrain/train';

export function ringCollective(ring: Ring): Collective {
  return {
    rank: ring.rank,
    world: ring.world,
    allReduce: (buffer, step) => ring.allReduce(buffer, { step }),
  };
}
