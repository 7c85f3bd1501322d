/**
 * The worker's transfers on its control channel (libs/protocol's transfer.ts): its
 * states and final weights to the coordinator, and the coordinator's state to it when it
 * is a generation's source.
 *
 * Outgoing transfers go one at a time, in the order asked: the coordinator takes one
 * transfer at a time from a worker, and a `state` asked for while a checkpoint is still
 * on its way must follow it, not interleave with it. Incoming, there is at most one (the
 * newest generation's state); a newer one replaces it, and the chunks of the one replaced
 * are acked and dropped. A closed channel fails them all.
 */
import {
  type AckMessage,
  type ChunkMessage,
  IncomingTransfer,
  OutgoingTransfer,
  ProtocolError,
  TransferError,
  type TransferHead,
  type TransferSource,
  type WorkerMessage,
} from '@ringtrain/protocol';

export class Transfers {
  private lastId = 0;
  private readonly outgoing = new Map<number, OutgoingTransfer>();
  private incoming: IncomingTransfer | null = null;
  /** The newest incoming transfer's id: the coordinator numbers them in order, so a chunk below it is of one replaced. */
  private newestIncoming = 0;
  /** The end of the last transfer queued: the next starts after it. */
  private queue: Promise<unknown> = Promise.resolve();

  /** `send` sends one message if the channel is open, and says whether it was. */
  constructor(private readonly send: (m: WorkerMessage) => boolean) {}

  /**
   * Sends `source` as a transfer introduced by `announce(head)`, after any queued before
   * it; resolves once the coordinator has taken it all, rejects with a TransferError.
   * The source's bytes must not change until then.
   */
  transfer(announce: (head: TransferHead) => WorkerMessage, source: TransferSource): Promise<void> {
    const run = this.queue.then(async () => {
      const t = new OutgoingTransfer(++this.lastId, (m) => this.send(m));
      this.outgoing.set(t.id, t);
      try {
        if (!this.send(announce({ id: t.id, bytes: source.bytes }))) throw new TransferError('TRANSFER_ABORTED', 'no connection to the coordinator');
        await t.run(source);
      } finally {
        this.outgoing.delete(t.id);
      }
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** Receives transfer `head` from the coordinator into `sink`, replacing (and failing) any other. */
  receive(head: TransferHead, sink: (data: Uint8Array) => Promise<void> | void): IncomingTransfer {
    this.incoming?.fail(new TransferError('TRANSFER_ABORTED', `replaced by transfer ${head.id}`));
    const t = new IncomingTransfer(head, sink, (ack) => this.send(ack));
    this.incoming = t;
    this.newestIncoming = Math.max(this.newestIncoming, head.id);
    return t;
  }

  /** A chunk from the coordinator; a ProtocolError when it belongs to no transfer under way. */
  chunk(m: ChunkMessage): void {
    // A replaced transfer's chunks still on their way: dropped, and acked so that its sender finishes at once.
    if (m.id < this.newestIncoming && this.incoming?.id !== m.id) {
      this.send({ type: 'ack', id: m.id, offset: m.offset + m.data.byteLength });
      return;
    }
    if (this.incoming?.id !== m.id) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `a chunk of transfer ${m.id}, which is not under way`);
    this.incoming.take(m);
  }

  ack(m: AckMessage): void {
    this.outgoing.get(m.id)?.ack(m);
  }

  /** The channel closed: every transfer under way fails. */
  closed(why: string): void {
    const err = new TransferError('TRANSFER_ABORTED', why);
    this.incoming?.fail(err);
    this.incoming = null;
    for (const t of this.outgoing.values()) t.abort(err);
  }
}
