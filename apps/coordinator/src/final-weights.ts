/**
 * Rank 0's final weights, taken as they arrive: the transfer that follows its `done`
 * streams straight into model/ (libs/model's ModelFilesWriter: a temporary weights file,
 * hashed as it grows, fsynced and renamed into place with model.json once the job's end
 * commits it), and every piece is checked finite before it is written. So the
 * coordinator holds one chunk of the weights at a time, never the model, whatever its
 * size; report.html's confusion matrix comes with `done` itself (the workers count it).
 *
 * A value that is not finite is the sender's fault: PROTOCOL_BAD_MESSAGE, naming the
 * parameter's index in the whole vector (`done: final weights params[i] is NaN`), which
 * fails the transfer and closes its connection (1008); nothing of it stays.
 */
import { type Architecture, type ModelMetadata, ModelFilesWriter } from '@ringtrain/model';
import { ProtocolError } from '@ringtrain/protocol';

/**
 * Finds the first float32 that is not finite in a stream of little-endian bytes cut
 * anywhere: a transfer's chunks need not end on a float, so the bytes of one cut in two
 * are carried to the next piece.
 */
export class FiniteScan {
  private readonly carry = new Uint8Array(4);
  private carried = 0;
  /** Floats checked so far: the index of the next. */
  private floats = 0;

  /** The first value of `data` that is not finite, as `params[i] is v` with i its index in the whole stream; null when all are. */
  scan(data: Uint8Array): string | null {
    let at = 0;
    if (this.carried > 0) {
      at = Math.min(4 - this.carried, data.byteLength);
      this.carry.set(data.subarray(0, at), this.carried);
      this.carried += at;
      if (this.carried < 4) return null;
      this.carried = 0;
      const bad = this.check(new Float32Array(this.carry.buffer));
      if (bad) return bad;
    }
    const whole = Math.floor((data.byteLength - at) / 4);
    const body = data.subarray(at, at + 4 * whole);
    // A view when aligned (msgpack's byte fields are copies at offset 0); else a copy of this piece only.
    const values = body.byteOffset % 4 === 0 ? new Float32Array(body.buffer, body.byteOffset, whole) : new Float32Array(body.slice().buffer);
    const bad = this.check(values);
    if (bad) return bad;
    this.carried = data.byteLength - at - 4 * whole;
    this.carry.set(data.subarray(data.byteLength - this.carried));
    return null;
  }

  private check(values: Float32Array): string | null {
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return `params[${this.floats + i}] is ${values[i]}`;
    this.floats += values.length;
    return null;
  }
}

/** The final weights of one `done` being received into model/. */
export class FinalWeights {
  private readonly scanner = new FiniteScan();

  private constructor(private readonly opening: Promise<ModelFilesWriter>) {}

  /** Starts receiving `arch`'s weights into `dir` (the run's model/). */
  static open(dir: string, arch: Architecture, metadata: ModelMetadata): FinalWeights {
    const opening = ModelFilesWriter.open(dir, arch, metadata);
    // A failure to open surfaces at the first push; this keeps it from being unhandled until then.
    opening.catch(() => {});
    return new FinalWeights(opening);
  }

  /** The transfer's sink: each piece checked, then appended. Rejects with PROTOCOL_BAD_MESSAGE at a value that is not finite, writing nothing of that piece. */
  push = async (data: Uint8Array): Promise<void> => {
    const bad = this.scanner.scan(data);
    if (bad) throw new ProtocolError('PROTOCOL_BAD_MESSAGE', `done: final weights ${bad}`);
    await (await this.opening).write(data);
  };

  /** The transfer completed (its SHA-256 matched): weights.bin and model.json go into place. */
  async finish(): Promise<{ readonly sha256: string; readonly bytes: number }> {
    return (await this.opening).finish();
  }

  /** The transfer failed, or the outputs could not be written: nothing of these weights stays. Never rejects. */
  async abort(): Promise<void> {
    await this.opening.then((w) => w.abort()).catch(() => {});
  }
}
