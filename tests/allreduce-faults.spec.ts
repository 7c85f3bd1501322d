/**
 * Faults with every rank in its own process: one peer killed (-9), stopped (SIGSTOP),
 * its connection cut, or partitioned, in the middle of a stream of all-reduces. Every
 * survivor must reject with RING_PEER_LOST within the deadline plus slack, and the
 * survivors must then form the next generation and reduce correctly.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { allReduce, form, killAll, spawnRanks, type RankProcess } from './allreduce-harness.js';
import { FaultProxy } from './allreduce-proxy.js';

const tuning = { opTimeoutMs: 4000, heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1000, segmentBytes: 64 * 1024 };
/** Detection must be faster than an operation's deadline; this is the allowance for scheduling on 2 busy cores. */
const SLACK_MS = 1500;
const LOOP_LENGTH = 256 * 1024;

let procs: RankProcess[] = [];
let proxy: FaultProxy | undefined;
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
  await killAll(procs);
  procs = [];
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts every rank reducing in a loop, applies `fault` mid-stream, and checks how the survivors end. */
async function faultMidStream(survivors: readonly RankProcess[], all: readonly RankProcess[], fault: () => void, code = 'RING_PEER_LOST'): Promise<void> {
  all.forEach((p) => p.send({ type: 'loop', length: LOOP_LENGTH }));
  await sleep(400);
  const at = Date.now();
  fault();
  const ends = await Promise.all(survivors.map((p) => p.next('loopEnded', tuning.opTimeoutMs + 10_000)));
  for (const end of ends) {
    assert.equal(end.code, code);
    assert.ok(end.ops > 0, 'the fault struck after some operations had completed');
    assert.ok(end.at - at <= tuning.opTimeoutMs + SLACK_MS, `rejected ${end.at - at} ms after the fault`);
  }
}

async function nextGenerationWorks(survivors: readonly RankProcess[], generation: number): Promise<void> {
  await form(survivors, generation, tuning);
  const replies = await allReduce(survivors, 'int', generation, 10007);
  for (const r of replies) assert.ok(r.ok);
  assert.equal(new Set(replies.map((r) => r.digest)).size, 1);
}

describe('all-reduce faults across processes', () => {
  it('kill -9 of one peer: every survivor rejects with RING_PEER_LOST, then a new generation succeeds', async () => {
    procs = await spawnRanks(4);
    await form(procs, 1, tuning);
    const victim = procs[2]!;
    const survivors = procs.filter((p) => p !== victim);
    await faultMidStream(survivors, procs, () => victim.kill('SIGKILL'));
    await nextGenerationWorks(survivors, 2);
  });

  it('SIGSTOP of one peer: heartbeats find it, every survivor rejects, then a new generation succeeds', async () => {
    procs = await spawnRanks(4);
    await form(procs, 1, tuning);
    const victim = procs[1]!;
    const survivors = procs.filter((p) => p !== victim);
    await faultMidStream(survivors, procs, () => victim.kill('SIGSTOP'));
    victim.kill('SIGKILL');
    await nextGenerationWorks(survivors, 2);
  });

  it('one connection cut: both ends and the rest reject, then the same members form a new generation', async () => {
    procs = await spawnRanks(3);
    proxy = await FaultProxy.start(procs[1]!.port);
    const p = proxy;
    await form(procs, 1, tuning, [procs[0]!.port, p.port, procs[2]!.port]);
    await faultMidStream(procs, procs, () => p.cut());
    await nextGenerationWorks(procs, 2);
  });

  it('one connection partitioned (silent, not closed): heartbeats find it, then a new generation succeeds', async () => {
    procs = await spawnRanks(3);
    proxy = await FaultProxy.start(procs[2]!.port);
    const p = proxy;
    await form(procs, 1, tuning, [procs[0]!.port, procs[1]!.port, p.port]);
    await faultMidStream(procs, procs, () => p.partition());
    await nextGenerationWorks(procs, 2);
  });
});
