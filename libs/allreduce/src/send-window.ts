/**
 * The frames a rank sends out of the caller's own buffer (the first reduce-scatter step,
 * a broadcast from its root), at most `maxSlots` at a time. Each frame is a header the
 * source writes into a reusable slot and a payload that is a view of the caller's
 * buffer, written as it is: no copy. A slot returns when its frame is handed to the
 * kernel, so the slots pace the sender to the socket and bound what is in flight.
 * Slots are allocated on first use and then reused for the life of the ring.
 *
 * The caller's buffer must hold still until the bytes are in the kernel; the operations
 * guarantee it (an all-reduce overwrites a chunk it sent only once its successor has
 * received it, a broadcast root finishes only on the acknowledgement that comes round).
 */

export interface SlotSource {
  /** Whether another frame is waiting for a slot. */
  hasNext(): boolean;
  /** Writes the next frame's header into `head` (slotBytes long) and returns its payload. */
  fill(head: Buffer): Buffer;
}

interface Slot {
  readonly buf: Buffer;
  readonly done: (err?: Error | null) => void;
}

/** Writes one frame of `head` followed by `payload`; `done` once both are in the kernel (or failed). */
export type Transmit = (head: Buffer, payload: Buffer, done: (err?: Error | null) => void) => void;

export class SendWindow {
  readonly slotBytes: number;
  private readonly maxSlots: number;
  private readonly free: Slot[] = [];
  private allocated = 0;
  private readonly transmit: Transmit;
  private source: SlotSource | undefined;

  constructor(slotBytes: number, maxSlots: number, transmit: Transmit) {
    this.slotBytes = slotBytes;
    this.maxSlots = maxSlots;
    this.transmit = transmit;
  }

  /** Slots currently handed to the socket. */
  get inFlight(): number {
    return this.allocated - this.free.length;
  }

  /** Sends from `source` as slots allow, now and whenever a slot comes back. */
  drain(source: SlotSource | undefined): void {
    this.source = source;
    this.pump();
  }

  private pump(): void {
    const source = this.source;
    if (!source) return;
    while (source.hasNext()) {
      const slot = this.take();
      if (!slot) return;
      const payload = source.fill(slot.buf);
      this.transmit(slot.buf, payload, slot.done);
    }
    if (this.source === source) this.source = undefined;
  }

  private take(): Slot | undefined {
    const slot = this.free.pop();
    if (slot || this.allocated >= this.maxSlots) return slot;
    this.allocated++;
    const created: Slot = {
      buf: Buffer.allocUnsafe(this.slotBytes),
      done: (err) => {
        this.free.push(created);
        if (!err) this.pump();
      },
    };
    return created;
  }
}
