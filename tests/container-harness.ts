/**
 * Containers for the Kubernetes tests, on podman (../shared/containers.md): the local
 * image (deploy/local-image/build.sh, built once per test process), podman's Docker API
 * for testcontainers, and plain podman commands. Everything a test creates carries a
 * random suffix and is removed at the end; nothing talks to any address but loopback
 * and the test's own podman networks.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const BUILD = fileURLToPath(new URL('../deploy/local-image/build.sh', import.meta.url));
export const IMAGE = 'localhost/ringtrain:test';

export async function podman(...args: string[]): Promise<string> {
  const { stdout } = await run('podman', args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

let built: Promise<void> | null = null;
/** Builds the local image once per test process (about 10 s). */
export function buildImage(): Promise<void> {
  built ??= run(BUILD, ['test'], { maxBuffer: 16 * 1024 * 1024 }).then(() => undefined);
  return built;
}

export function suffix(): string {
  return randomBytes(3).toString('hex');
}

const SOCKET = '/run/podman/ringtrain-tests.sock';
let service: ChildProcess | null = null;

/** Starts podman's Docker-compatible API for testcontainers and points it there. */
export async function startPodmanService(): Promise<void> {
  mkdirSync('/run/podman', { recursive: true });
  service = spawn('podman', ['system', 'service', '--time=0', `unix://${SOCKET}`], { stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(SOCKET); i++) await new Promise((r) => setTimeout(r, 100));
  if (!existsSync(SOCKET)) throw new Error(`podman system service did not create ${SOCKET}`);
  process.env.DOCKER_HOST = `unix://${SOCKET}`;
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true'; // Ryuk's image would need a pull
  process.env.TESTCONTAINERS_HOST_OVERRIDE = '127.0.0.1';
}

export function stopPodmanService(): void {
  service?.kill('SIGTERM');
  service = null;
}
