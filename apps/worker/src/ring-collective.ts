/**
 * The worker's side of a step: libs/train's training loop sums each step's gradient
 * buffer through a Collective; in a cluster that is the generation's ring. The ring
 * tags every operation with the global step, so a frame from another step is never
 * summed into this one.
 *
 * A ring of one has nothing to wait for, so its all-reduce resolves at once and the loop
 * would never give the event loop a turn: no control message (a stop, a new
 * generation), heartbeat or signal would be handled until training ended. It yields
 * once per step instead.
 */
import type { Ring } from '@ringtrain/allreduce';
import type { Collective } from '@ringtrain/train';

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function ringCollective(ring: Ring): Collective {
  return {
    rank: ring.rank,
    world: ring.world,
    allReduce: async (buffer, step) => {
      await ring.allReduce(buffer, { step });
      if (ring.world === 1) await yieldToEventLoop();
    },
  };
}
