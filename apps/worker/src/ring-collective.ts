/**
 * The worker's side of a step: libs/train's training loop sums each step's gradient
 * buffer through a Collective; in a cluster that is the generation's ring. The ring
 * tags every operation with the global step, so a frame from another step is never
 * summed into this one.
 */
import type { Ring } from '@ringtrain/allreduce';
import type { Collective } from '@ringtrain/train';

export function ringCollective(ring: Ring): Collective {
  return {
    rank: ring.rank,
    world: ring.world,
    allReduce: async (buffer, step) => {
      await ring.allReduce(buffer, { step });
    },
  };
}
