/**
 * A fixed set of reusable send buffers ("slots") for frames whose payload has to be
 * copied out of the caller's buffer (the first reduce-scatter step, a broadcast from
 * its root). A slot returns to the pool when ws has handed its bytes to the kernel, so
 * the number of slots bounds the memory in flight and paces the sender to the socket.
 * Slots are allocated on first use and then reused for the life of the ring.
 */

export interface SlotSource {
  /** Whether another frame is waiting for a slot. */
  hasNext(): boolean;
  /** Writes the next frame into `slot` and returns its length in bytes. */
  fill(slot: Buffer): number;
}

interface Slot {
  readonly buf: Buffer;
  readonly done: (err?: Error | null) => void;
}

export type Transmit = (frame: Buffer, done: (err?: Error | null) => void) => void;

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
      const bytes = source.fill(slot.buf);
      this.transmit(slot.buf.subarray(0, bytes), slot.done);
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
