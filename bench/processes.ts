// Processes the benchmark starts and watches: the built injector (`node dist/main.js serve`), the
// benchmark server, free ports, readiness polling and resident memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Options } from 'autocannon';

/** The repository root (the benchmark runs from any working directory). */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Imports a module of the build (`npm run build`), typed as its source. */
export async function importBuilt<T>(path: string): Promise<T> {
  const file = `${ROOT}dist/${path}`;
  if (!existsSync(file)) throw new Error(`${file} is missing: run the benchmark with npm run bench (it builds first)`);
  return (await import(pathToFileURL(file).href)) as T;
}

/** Returns a TCP port nobody listens on right now (the injector's config takes 1–65535, not 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Environment of a child: the parent's without any ENVOY_INJECTOR_* setting, plus `extra`. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('ENVOY_INJECTOR_')));
  return { ...env, ...extra };
}

/** Starts `node dist/main.js serve` on `port` with the certificates in `certDir`; logs go nowhere. */
export function spawnInjector(port: number, certDir: string): ChildProcess {
  return spawn(process.execPath, ['dist/main.js', 'serve'], {
    cwd: ROOT,
    env: cleanEnv({
      ENVOY_INJECTOR_SERVER_PORT: String(port),
      ENVOY_INJECTOR_TLS_CERT_DIR: certDir,
      // Fixed, so the start does not depend on a cluster being reachable.
      ENVOY_INJECTOR_NATIVE_SIDECAR: 'true',
    }),
    // The production log level (info: one line per admission), written to /dev/null.
    stdio: 'ignore',
  });
}

/** Resolves with the status of GET `path`, or undefined when the connection (or the CA) fails. */
function getStatus(port: number, ca: () => string, path: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    let trusted: string;
    try {
      trusted = ca();
    } catch {
      return resolve(undefined);
    }
    const req = request({ host: '127.0.0.1', port, path, ca: trusted, servername: 'localhost', agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * Polls /readyz every `intervalMs` until it answers 200, trusting the CA `ca` gives (it may not
 * exist yet); throws if the process exits first.
 */
export async function waitReady(child: ChildProcess, port: number, ca: string | (() => string), intervalMs = 5, limitMs = 60_000): Promise<void> {
  const started = Date.now();
  const trust = typeof ca === 'string' ? () => ca : ca;
  while ((await getStatus(port, trust, '/readyz')) !== 200) {
    if (child.exitCode !== null) throw new Error(`the injector exited with code ${child.exitCode} before it was ready`);
    if (Date.now() - started > limitMs) throw new Error(`the injector was not ready within ${limitMs} ms`);
    await sleep(intervalMs);
  }
}

/** Sends SIGTERM, then SIGKILL if the process still runs after `killAfterMs`; resolves once it has exited. */
export async function stop(child: ChildProcess, killAfterMs = 60_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
  try {
    await exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Resolves with the port a benchmark server script prints as its first line (`{"port": N}`);
 * rejects if it exits first or prints nothing within `limitMs`.
 */
export function portLine(child: ChildProcess, what: string, limitMs = 60_000, stderr: () => string = () => ''): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not listen within ${limitMs} ms`)), limitMs);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with code ${code}${stderr() === '' ? '' : `: ${stderr()}`}`));
    });
  });
}

/** Resident set size of process `pid` in bytes, from /proc (the benchmark runs on Linux). */
export function rssBytes(pid: number): number {
  if (existsSync(`/proc/${pid}/status`)) {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (match) return Number(match[1]) * 1024;
  }
  throw new Error('resident memory can only be read from /proc (Linux)');
}

/**
 * autocannon's options for POSTing `body` as a JSON review to `path` of a benchmark server over TLS
 * (its certificate names localhost), over `connections` connections; the caller adds how long.
 */
export function reviewLoad(port: number, path: string, body: string, connections: number): Options {
  return {
    url: `https://127.0.0.1:${port}${path}`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections,
    servername: 'localhost',
  };
}

/** CPU time (user + system, all threads) process `pid` has used so far, in microseconds. */
export function cpuMicros(pid: number): number {
  // Fields 14 and 15 of /proc/<pid>/stat, counted after the command name (which may hold spaces).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // USER_HZ: 100 on Linux whatever the kernel's tick rate.
  const ticksPerSecond = 100;
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond;
}
