/**
 * The cluster in containers, driven by testcontainers over podman's API: a coordinator
 * and 2 workers from the local image on a network of their own, and one fault each time
 * (a third worker joins mid-run; a worker is killed with SIGKILL; one is paused and
 * later unpaused; one is disconnected from the network). Each time the job completes,
 * no generation starts before the last step reported before the fault, and the final
 * weights are those of an undisturbed `ringtrain train` run up to summation order.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GenericContainer, getContainerRuntimeClient, Network, Wait, type StartedNetwork, type StartedTestContainer } from 'testcontainers';
import { buildImage, IMAGE, startPodmanService, stopPodmanService } from './container-harness.js';
import { assertNoStepLost, assertSameTraining, clusterLog, jobYaml, run, STEPS_PER_EPOCH, tempDir } from './cluster-harness.js';

const EPOCHS = 12;
const TOKEN = 'container-test-token-0123456789abcdef';

interface Status {
  state: string;
  step: number;
  generation: number;
  ring: string[];
  events: { kind: string; message: string }[];
}

class ContainerCluster {
  coordinator!: StartedTestContainer;
  readonly workers = new Map<string, StartedTestContainer>();
  network!: StartedNetwork;

  constructor(readonly dir: string) {}

  async start(workers: string[]): Promise<void> {
    this.network = await new Network().start();
    this.coordinator = await new GenericContainer(IMAGE)
      .withNetwork(this.network)
      .withNetworkAliases('coordinator')
      .withEnvironment({ RINGTRAIN_TOKEN: TOKEN, RINGTRAIN_JOB: '/data/job.yaml', RINGTRAIN_OUT: '/data/run', RINGTRAIN_AFTER_JOB: 'wait' })
      .withBindMounts([{ source: this.dir, target: '/data' }])
      .withCommand(['coordinator', '--port', '7070'])
      .withExposedPorts(7070)
      .withWaitStrategy(Wait.forHttp('/readyz', 7070))
      .start();
    for (const id of workers) await this.addWorker(id);
  }

  async addWorker(id: string): Promise<void> {
    const w = await new GenericContainer(IMAGE)
      .withNetwork(this.network)
      .withNetworkAliases(id)
      .withEnvironment({
        RINGTRAIN_TOKEN: TOKEN,
        RINGTRAIN_COORDINATOR: 'http://coordinator:7070',
        RINGTRAIN_ADVERTISE_HOST: id,
        RINGTRAIN_PEER_PORT: '7071',
        RINGTRAIN_WORKER_ID: id,
      })
      .withCommand(['worker'])
      .withWaitStrategy(Wait.forLogMessage(/worker started/))
      .start();
    this.workers.set(id, w);
  }

  async status(): Promise<Status> {
    const res = await fetch(`http://127.0.0.1:${this.coordinator.getMappedPort(7070)}/api/status`);
    return (await res.json()) as Status;
  }

  async waitFor(what: string, pred: (s: Status) => boolean, timeoutMs = 60_000): Promise<Status> {
    const deadline = Date.now() + timeoutMs;
    let last: Status | null = null;
    while (Date.now() < deadline) {
      try {
        last = await this.status();
        if (pred(last)) return last;
      } catch {
        // restarting or not yet listening
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}; last status: ${JSON.stringify(last && { ...last, events: last.events.slice(-6) })}${await this.logTails()}`);
  }

  /** The last lines of each worker's log, for a failure's message. */
  private async logTails(): Promise<string> {
    let out = '';
    for (const [id, w] of this.workers) {
      const lines: string[] = [];
      const stream = await w.logs({ tail: 30 }).catch(() => null);
      if (!stream) continue;
      stream.on('data', (d: Buffer | string) => lines.push(String(d)));
      await new Promise((r) => setTimeout(r, 500));
      stream.destroy();
      out += `\n--- ${id} ---\n${lines.join('').trimEnd()}`;
    }
    return out;
  }

  /** The underlying container, for faults testcontainers has no verb for. */
  async raw(id: string) {
    return (await getContainerRuntimeClient()).container.getById(this.workers.get(id)!.getId());
  }

  async stop(): Promise<void> {
    for (const w of this.workers.values()) await w.stop({ timeout: 1 }).catch(() => undefined);
    await this.coordinator?.stop({ timeout: 1 }).catch(() => undefined);
    await this.network?.stop().catch(() => undefined);
  }
}

describe('the cluster in containers survives joins and faults', () => {
  let root = '';
  let reference = '';
  const clusters: ContainerCluster[] = [];

  before(async () => {
    await startPodmanService();
    await buildImage();
    root = await tempDir('containers');
    const job = join(root, 'job.yaml');
    await writeFile(job, jobYaml({ epochs: EPOCHS }));
    reference = join(root, 'train');
    await run(['train', '--job', job, '--out', reference]);
  });

  after(async () => {
    for (const c of clusters) await c.stop();
    stopPodmanService();
  });

  /** A coordinator and workers a and b, training past step 60, then `fault`; checks the outcome. */
  async function scenario(name: string, fault: (c: ContainerCluster, before: Status) => Promise<void>): Promise<void> {
    const dir = join(root, name);
    await mkdir(dir);
    chmodSync(dir, 0o777); // the containers run as uid 10001
    // Both workers from the first step: a solo start would add a change of world nobody asked for.
    await writeFile(join(dir, 'job.yaml'), jobYaml({ epochs: EPOCHS, startWorkers: 2 }));
    const c = new ContainerCluster(dir);
    clusters.push(c);
    await c.start(['a', 'b']);
    const before = await c.waitFor('a and b training past step 60', (s) => s.state === 'running' && s.ring.length === 2 && s.step >= 60);
    await fault(c, before);
    await c.waitFor('the job to complete', (s) => s.state === 'completed', 180_000);
    const { generations } = clusterLog(join(dir, 'run'));
    assertNoStepLost(generations, before.generation, before.step);
    const metrics = JSON.parse(readFileSync(join(dir, 'run', 'metrics.json'), 'utf8')) as { steps: number };
    assert.equal(metrics.steps, EPOCHS * STEPS_PER_EPOCH);
    assertSameTraining(reference, join(dir, 'run'), `fault at step ${before.step}; generations ${JSON.stringify(generations)}`);
    await c.stop();
  }

  test('a third worker joins mid-run', () =>
    scenario('join', async (c) => {
      await c.addWorker('c');
      await c.waitFor('three in the ring', (s) => s.state === 'running' && s.ring.length === 3);
    }));

  test('a worker is killed with SIGKILL', () =>
    scenario('kill', async (c) => {
      await (await c.raw('b')).kill({ signal: 'SIGKILL' });
      const s = await c.waitFor('a alone', (s) => s.state === 'running' && s.ring.length === 1, 30_000);
      assert.ok(s.events.some((e) => e.kind === 'lost' && e.message.startsWith('b lost')), 'the loss of b is an event');
    }));

  test('a worker is paused, then unpaused: it rejoins', () =>
    scenario('pause', async (c) => {
      const b = await c.raw('b');
      await b.pause();
      try {
        await c.waitFor('a alone', (s) => s.state === 'running' && s.ring.length === 1 && s.ring[0] === 'a', 30_000);
      } finally {
        await b.unpause();
      }
      await c.waitFor('b back', (s) => s.state === 'running' && s.ring.length === 2, 40_000);
    }));

  test('a worker is disconnected from the network', () =>
    scenario('disconnect', async (c) => {
      const client = await getContainerRuntimeClient();
      await client.network.getById(c.network.getId()).disconnect({ Container: c.workers.get('b')!.getId(), Force: true });
      await c.waitFor('a alone', (s) => s.state === 'running' && s.ring.length === 1 && s.ring[0] === 'a', 30_000);
    }));
});
