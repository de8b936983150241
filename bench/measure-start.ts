// Cold start: from spawning `node dist/main.js serve` to its first 200 on /readyz.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { freePort, ROOT, spawnInjector, stop, waitReady } from './processes.ts';

/** Cold-start times in milliseconds. */
export interface StartFigures {
  /** With the certificates already in place (every start after the first), each run. */
  readonly runsMs: readonly number[];
  readonly medianMs: number;
  /** The very first start, which also generates the CA and the serving certificate. */
  readonly firstStartMs: number;
  /** Where start-up time goes: loading modules of the build in a bare node, median ms each. */
  readonly moduleLoadMs: Readonly<Record<string, number>>;
}

/** Milliseconds for a fresh node to import `modules` of the build and exit, median of `runs`. */
function importMs(modules: readonly string[], runs: number): number {
  const imports = modules.map((m) => `await import(${JSON.stringify(pathToFileURL(`${ROOT}dist/${m}`).href)});`).join('');
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', imports], { stdio: 'ignore' });
    if (child.status !== 0) throw new Error(`importing ${modules.join(', ')} failed`);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

async function timeStart(certDir: string, ca: () => string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawnInjector(port, certDir);
  try {
    await waitReady(child, port, ca);
    return performance.now() - started;
  } finally {
    await stop(child);
  }
}

/** Starts the injector `runs` times with existing certificates, and once without. */
export async function measureColdStart(certDir: string, ca: string, runs: number): Promise<StartFigures> {
  const runsMs: number[] = [];
  for (let i = 0; i < runs; i++) runsMs.push(await timeStart(certDir, () => ca));
  const fresh = mkdtempSync(join(tmpdir(), 'envoy-injector-bench-first-'));
  try {
    // The CA does not exist before the process writes it; the poll reads it once it does.
    const firstStartMs = await timeStart(fresh, () => readFileSync(join(fresh, 'ca.crt'), 'utf8'));
    const sorted = [...runsMs].sort((a, b) => a - b);
    const moduleLoadMs = {
      'node alone': importMs([], 3),
      'server (dist/server/app.js)': importMs(['server/app.js'], 3),
      '@kubernetes/client-node (dist/kube/client.js)': importMs(['kube/client.js'], 3),
      'the CLI entry (dist/cli.js)': importMs(['cli.js'], 3),
    };
    return { runsMs, medianMs: sorted[Math.floor(sorted.length / 2)]!, firstStartMs, moduleLoadMs };
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
}
