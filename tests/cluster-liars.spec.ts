/**
 * A token holder that lies (cluster-liar.ts) joins a running job of two honest workers
 * and tries, one after another: a generation number at the top of the u32 range, a fetch
 * of 2 million rows, a claim to be far ahead with the coordinator's HTTP port as its
 * ring address, and the same claim with a real ring endpoint and a state that cannot
 * back it. Each is refused or excluded, and the job completes with the weights and every
 * step's loss of the same job run undisturbed on two workers.
 *
 * Both runs wait for their two workers before the first generation (startWorkers), and
 * no generation that includes the liar commits a step; the job's exact reduction makes
 * the comparison exact whatever happened (cluster-harness.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertSameTraining, Cluster, clusterLog, exited, killAll, run, STEPS_PER_EPOCH, tempDir, TOKEN, writeJob } from './cluster-harness.js';

/** Long enough that the liar's four attempts (about 10 s, most of it a ring that cannot form) end well before the job. */
const EPOCHS = 120;
const LIAR = fileURLToPath(new URL('./cluster-liar.ts', import.meta.url));

interface Attempt {
  readonly attempt: string;
  readonly close?: { readonly code: number; readonly reason: string };
  readonly reject?: string;
}

describe('a token holder that lies cannot corrupt the job', () => {
  let dir = '';
  let job = '';
  let liar: ChildProcess | null = null;

  before(async () => {
    dir = await tempDir('liars');
    job = await writeJob(dir, { epochs: EPOCHS, everySteps: 200, startWorkers: 2 });
    await run(['local', '--job', job, '--workers', '2', '--out', join(dir, 'clean')], 180_000);
  });
  after(async () => {
    liar?.kill('SIGKILL');
    await killAll();
  });

  test('its bad numbers, its fetch and its false claims are refused; the job ends as the clean run did', async (t) => {
    const cluster = new Cluster(job, join(dir, 'lied-to'));
    await cluster.start();
    for (const id of ['a', 'b']) cluster.addWorker(id);
    await cluster.waitFor('a and b training', (s) => s.state === 'running' && s.ring.length === 2 && s.step >= 20);
    // It claims to hold the job's end: further than anyone, so it is the one chosen as the source.
    const claim = { step: EPOCHS * STEPS_PER_EPOCH, epochs: EPOCHS };
    liar = spawn(process.execPath, ['--import', 'tsx', LIAR, String(cluster.port), TOKEN, String(claim.step), String(claim.epochs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    liar.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    assert.equal(await exited(liar, 90_000), 0, `the liar failed:\n${out}`);
    t.diagnostic(`the liar's attempts (ms since it started):\n${out.trim()}`);
    const attempts = new Map(
      out
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Attempt)
        .map((a) => [a.attempt, a]),
    );

    const generation = attempts.get('generation')!;
    assert.equal(generation.close?.code, 1008);
    assert.match(generation.close!.reason, /^PROTOCOL_BAD_MESSAGE: register: generation 4294967295 is more than 1000 above/);
    const fetch = attempts.get('fetch')!;
    assert.deepEqual(fetch.close, { code: 1008, reason: 'PROTOCOL_BAD_MESSAGE: worker message "fetch": indices: 2000000 rows asked for; the train split has 2400' });
    // The HTTP port answers a TCP connect, not the ring's handshake.
    const address = attempts.get('address')!;
    assert.equal(address.reject, 'PEER_UNREACHABLE');
    assert.equal(address.close?.code, 4000);
    // A real endpoint, but a state at step 0: the members refuse it and name its source.
    const state = attempts.get('state')!;
    assert.equal(state.reject, 'SOURCE_INVALID');
    assert.equal(state.close?.code, 4000);

    await cluster.completed(240_000);
    const log = clusterLog(cluster.out);
    const excluded = log.events.filter((e) => e.kind === 'excluded').map((e) => e.message);
    assert.ok(
      excluded.some((m) => /^liar-address excluded: [ab] could not connect to its ring address 127\.0\.0\.1:\d+, nor could the coordinator \(not a ring endpoint \(HTTP 404\)\)$/.test(m)),
      excluded.join('\n'),
    );
    assert.ok(
      excluded.some((m) => m.startsWith(`liar-state excluded: it claimed step ${claim.step} but the state it sent did not verify at `) && m.includes(`its source was chosen for step ${claim.step}`)),
      excluded.join('\n'),
    );
    // The last generation was a and b's.
    assert.equal(log.generations.at(-1)!.world, 2);
    assertSameTraining(join(dir, 'clean'), cluster.out, `generations ${JSON.stringify(log.generations)}`);
  });
});
