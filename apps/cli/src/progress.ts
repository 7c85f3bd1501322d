/**
 * Progress for long work. On a terminal, one line redrawn in place (at most ten times a
 * second) and a line per epoch; elsewhere, a log record per epoch, so that stderr stays
 * JSON lines for whatever collects it.
 */
import type { Logger } from 'pino';
import type { EpochRecord, StepProgress } from '@ringtrain/train';

const WIDTH = 24;

function fmt(v: number | null, digits = 4): string {
  return v === null || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

function rate(v: number): string {
  return Math.round(v).toLocaleString('en-US');
}

export function stepLine(p: StepProgress): string {
  const filled = Math.round((p.step / p.stepsPerEpoch) * WIDTH);
  const bar = '#'.repeat(filled) + '.'.repeat(WIDTH - filled);
  const acc = p.accuracy === null ? '' : ` acc ${fmt(p.accuracy)}`;
  return `epoch ${p.epoch}/${p.epochs} [${bar}] ${p.step}/${p.stepsPerEpoch} loss ${fmt(p.loss)}${acc} ${rate(p.samplesPerSecond)} samples/s`;
}

export function epochLine(r: EpochRecord, epochs: number): string {
  const acc = r.train.accuracy === null ? '' : ` acc ${fmt(r.train.accuracy)}`;
  const val = r.validation
    ? ` | val loss ${fmt(r.validation.loss)}${r.validation.accuracy === null ? '' : ` acc ${fmt(r.validation.accuracy)}`}`
    : '';
  return `epoch ${r.epoch}/${epochs} loss ${fmt(r.train.loss)}${acc}${val} | ${rate(r.samplesPerSecond)} samples/s ${r.seconds.toFixed(1)}s`;
}

export class Progress {
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly log: Logger,
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly live = out.isTTY === true,
  ) {}

  step(p: StepProgress): void {
    if (!this.live) return;
    const now = Date.now();
    if (now - this.lastDraw < 100 && p.step !== p.stepsPerEpoch) return;
    this.lastDraw = now;
    this.out.write(`\r\x1b[2K${stepLine(p)}`);
    this.drawn = true;
  }

  epoch(r: EpochRecord, epochs: number): void {
    if (!this.live) {
      this.log.info({ epoch: r.epoch, epochs, train: r.train, validation: r.validation, learningRate: r.learningRate, samplesPerSecond: Math.round(r.samplesPerSecond), seconds: Number(r.seconds.toFixed(3)) }, 'epoch');
      return;
    }
    if (this.drawn) this.out.write('\r\x1b[2K');
    this.drawn = false;
    this.out.write(`${epochLine(r, epochs)}\n`);
  }
}
