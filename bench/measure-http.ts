// Load over real HTTPS with autocannon (in this process, against a child process): /mutate against
// the baseline route of the same server, and the injector's resident memory under a minute of load.
import { Buffer } from 'node:buffer';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon, { type Result } from 'autocannon';
import { BENCH_BASELINE_PATH } from '../src/server/app.ts';
import { cleanEnv, cpuMicros, portLine, reviewLoad, ROOT, rssBytes, spawnInjector, stop, waitReady } from './processes.ts';

/** Throughput and latency of one route. */
export interface RouteFigures {
  readonly path: string;
  /** Successful responses per second. */
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  readonly non2xx: number;
  readonly errors: number;
  /** CPU time of the server process per answered request, µs (independent of the client's share). */
  readonly serverCpuMicrosPerRequest: number;
}

/** One autocannon run, the latency of each successful answer, and the server's CPU time meanwhile. */
interface Run {
  readonly result: Result;
  readonly latenciesMs: readonly number[];
  readonly serverCpuMicros: number;
}

const CONNECTIONS = 10;

/** Loads `path` for `seconds`; collects each successful answer's latency into `latencies` if given. */
async function load(port: number, path: string, body: string, seconds: number, latencies?: number[]): Promise<Result> {
  const instance = autocannon({ ...reviewLoad(port, path, body, CONNECTIONS), duration: seconds });
  // autocannon's own histogram has whole milliseconds; the answers here take less than one.
  if (latencies !== undefined) {
    instance.on('response', (_client, statusCode, _bytes, ms) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(ms);
    });
  }
  return instance;
}

/** The `q` quantile (0–1) of `values`, nearest rank. */
function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

/** POSTs `body` once and returns the answer, as text and parsed (to check a route before loading it). */
function postOnce(port: number, ca: string, path: string, body: string): Promise<{ status: number; text: string; json: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', ca, servername: 'localhost', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve({ status: res.statusCode ?? 0, text, json: JSON.parse(text) as Record<string, any> });
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Starts a benchmark server script (it prints its port) and resolves with it. */
async function startServer(script: string, certDir: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: cleanEnv({ BENCH_CERT_DIR: certDir, ...env }),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    return { child, port: await portLine(child, script) };
  } catch (error) {
    await stop(child);
    throw error;
  }
}

async function measuredLoad(pid: number, port: number, path: string, body: string, seconds: number): Promise<Run> {
  const latenciesMs: number[] = [];
  const before = cpuMicros(pid);
  const result = await load(port, path, body, seconds, latenciesMs);
  return { result, latenciesMs, serverCpuMicros: cpuMicros(pid) - before };
}

function summarize(path: string, runs: readonly Run[]): RouteFigures {
  const results = runs.map((r) => r.result);
  const ok = results.reduce((sum, r) => sum + r['2xx'], 0);
  const seconds = results.reduce((sum, r) => sum + r.duration, 0);
  const latencies = runs.flatMap((r) => r.latenciesMs);
  return {
    path,
    requestsPerSecond: ok / seconds,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    requests: ok,
    non2xx: results.reduce((sum, r) => sum + r.non2xx, 0),
    errors: results.reduce((sum, r) => sum + r.errors, 0),
    serverCpuMicrosPerRequest: runs.reduce((sum, r) => sum + r.serverCpuMicros, 0) / ok,
  };
}

/** One pod size: /mutate against the bare node:https server and against the baseline route. */
export interface RouteComparison {
  readonly pod: string;
  readonly reviewBytes: number;
  readonly connections: number;
  readonly secondsPerRoute: number;
  /** Seconds of load each server got for this pod before the measured runs. */
  readonly warmupSeconds: number;
  /** bench/bare-server.ts: node:https in its own process, parse and allow. */
  readonly bare: RouteFigures;
  /** The same bare server parsing the review and sending /mutate's recorded answer to it. */
  readonly bareWithAnswer: RouteFigures;
  /** Bytes of /mutate's answer (the AdmissionReview JSON) to this review. */
  readonly answerBytes: number;
  /** The webhook's own baseline route (same fastify server, no injection). */
  readonly baseline: RouteFigures;
  readonly mutate: RouteFigures;
  /** /mutate throughput relative to the bare server's: the target. */
  readonly throughputRatio: number;
  /** /mutate throughput relative to the baseline route's. */
  readonly baselineRatio: number;
  /**
   * The bare server sending /mutate's answer, relative to it allowing (throughput): the most that
   * /mutate ÷ bare could be with an answer of this size, were making it free.
   */
  readonly answerCeiling: number;
  /** /mutate throughput relative to the bare server sending the same answer: the cost of making it. */
  readonly makingRatio: number;
  /**
   * The same from the servers' CPU time per request (bare ÷ /mutate): what the ratio would be were
   * each server alone on its core, unaffected by the client sharing the machine.
   */
  readonly serverCapacityRatio: number;
}

/** The path at which the bare server sends /mutate's recorded answer to the `index`th pod's review. */
const recordedPath = (index: number) => `/recorded/${index}`;

/**
 * Asks /mutate once for each review and records its answer as the bare server's recorded answers
 * (bench/bare-server.ts): the text around the review's uid, written to a file in `dir`.
 */
async function recordAnswers(port: number, ca: string, bodies: readonly string[], dir: string): Promise<{ file: string; answers: string[] }> {
  const around: Record<string, [string, string]> = {};
  const answers: string[] = [];
  for (const [index, body] of bodies.entries()) {
    const injected = await postOnce(port, ca, '/mutate', body);
    if (injected.status !== 200 || typeof injected.json['response']?.['patch'] !== 'string') throw new Error(`/mutate did not inject: ${injected.text}`);
    const uid = JSON.stringify((JSON.parse(body) as { request: { uid: string } }).request.uid);
    const at = injected.text.indexOf(uid);
    if (at < 0 || injected.text.lastIndexOf(uid) !== at) throw new Error(`the review's uid is not once in /mutate's answer: ${injected.text}`);
    around[recordedPath(index)] = [injected.text.slice(0, at), injected.text.slice(at + uid.length)];
    answers.push(injected.text);
  }
  const file = join(dir, 'recorded-answers.json');
  writeFileSync(file, JSON.stringify(around));
  return { file, answers };
}

/**
 * For each pod, loads the bare server (allowing, then sending /mutate's answer), the baseline route
 * and /mutate with the same review, in the order bare, bare with the answer, baseline, mutate,
 * mutate, baseline, bare with the answer, bare (so a drift in the machine's load weighs on all
 * alike), after a warm-up of each of `warmupSeconds`. A server's optimising compiler counts as its
 * CPU, and `node --trace-opt` on a /mutate server under typical load showed 474 optimisations in
 * its first 30 k admissions, 54 in the next 40 k and 2 in the 40 k after: the full run's 8 s (some
 * 40 k typical admissions on a quiet machine) is past most of it, --quick's 2 s is not. The bare
 * server and the webhook run in processes of their own.
 */
export async function compareRoutes(
  certDir: string,
  ca: string,
  bodies: Readonly<Record<string, string>>,
  secondsPerRun: number,
  warmupSeconds: number,
): Promise<RouteComparison[]> {
  const scratch = mkdtempSync(join(tmpdir(), 'envoy-injector-bench-answers-'));
  const webhook = await startServer('bench/server.ts', certDir).catch((error: unknown) => {
    rmSync(scratch, { recursive: true, force: true });
    throw error;
  });
  try {
    const recorded = await recordAnswers(webhook.port, ca, Object.values(bodies), scratch);
    const bare = await startServer('bench/bare-server.ts', certDir, { BENCH_RECORDED_ANSWERS: recorded.file });
    try {
      const comparisons: RouteComparison[] = [];
      for (const [index, [pod, body]] of Object.entries(bodies).entries()) {
        // Every target answers what it should before anything is measured; the bare server's
        // recorded answer is /mutate's, byte for byte.
        for (const [port, path] of [[webhook.port, BENCH_BASELINE_PATH], [bare.port, '/']] as const) {
          const allowed = await postOnce(port, ca, path, body);
          if (allowed.status !== 200 || allowed.json['response']?.['allowed'] !== true) throw new Error(`${path} failed: ${JSON.stringify(allowed)}`);
        }
        const answer = recorded.answers[index]!;
        const replayed = await postOnce(bare.port, ca, recordedPath(index), body);
        if (replayed.status !== 200 || replayed.text !== answer) throw new Error(`the bare server's recorded answer differs from /mutate's: ${replayed.text}`);
        await load(bare.port, '/', body, warmupSeconds);
        await load(bare.port, recordedPath(index), body, warmupSeconds);
        await load(webhook.port, BENCH_BASELINE_PATH, body, warmupSeconds);
        await load(webhook.port, '/mutate', body, warmupSeconds);
        const b1 = await measuredLoad(bare.child.pid!, bare.port, '/', body, secondsPerRun);
        const a1 = await measuredLoad(bare.child.pid!, bare.port, recordedPath(index), body, secondsPerRun);
        const r1 = await measuredLoad(webhook.child.pid!, webhook.port, BENCH_BASELINE_PATH, body, secondsPerRun);
        const m1 = await measuredLoad(webhook.child.pid!, webhook.port, '/mutate', body, secondsPerRun);
        const m2 = await measuredLoad(webhook.child.pid!, webhook.port, '/mutate', body, secondsPerRun);
        const r2 = await measuredLoad(webhook.child.pid!, webhook.port, BENCH_BASELINE_PATH, body, secondsPerRun);
        const a2 = await measuredLoad(bare.child.pid!, bare.port, recordedPath(index), body, secondsPerRun);
        const b2 = await measuredLoad(bare.child.pid!, bare.port, '/', body, secondsPerRun);
        const bareFigures = summarize('bare node:https', [b1, b2]);
        const withAnswerFigures = summarize("bare, /mutate's answer", [a1, a2]);
        const baselineFigures = summarize(BENCH_BASELINE_PATH, [r1, r2]);
        const mutateFigures = summarize('/mutate', [m1, m2]);
        comparisons.push({
          pod,
          reviewBytes: Buffer.byteLength(body),
          connections: CONNECTIONS,
          secondsPerRoute: 2 * secondsPerRun,
          warmupSeconds,
          bare: bareFigures,
          bareWithAnswer: withAnswerFigures,
          answerBytes: Buffer.byteLength(answer),
          baseline: baselineFigures,
          mutate: mutateFigures,
          throughputRatio: mutateFigures.requestsPerSecond / bareFigures.requestsPerSecond,
          baselineRatio: mutateFigures.requestsPerSecond / baselineFigures.requestsPerSecond,
          answerCeiling: withAnswerFigures.requestsPerSecond / bareFigures.requestsPerSecond,
          makingRatio: mutateFigures.requestsPerSecond / withAnswerFigures.requestsPerSecond,
          serverCapacityRatio: bareFigures.serverCpuMicrosPerRequest / mutateFigures.serverCpuMicrosPerRequest,
        });
      }
      return comparisons;
    } finally {
      await stop(bare.child);
    }
  } finally {
    await stop(webhook.child);
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Resident memory of the injector before, during and after sustained load. */
export interface MemoryFigures {
  readonly seconds: number;
  readonly rssAtReadyMiB: number;
  /** RSS sampled every 5 s during the load. */
  readonly rssSamplesMiB: readonly { readonly second: number; readonly mib: number }[];
  readonly rssAfterLoadMiB: number;
  readonly peakMiB: number;
  readonly requestsPerSecond: number;
  readonly non2xx: number;
  readonly errors: number;
}

const MiB = 1024 * 1024;

/** Runs `node dist/main.js serve` under `seconds` of /mutate load and samples its RSS. */
export async function memoryUnderLoad(certDir: string, ca: string, port: number, body: string, seconds: number): Promise<MemoryFigures> {
  const child = spawnInjector(port, certDir);
  try {
    await waitReady(child, port, ca);
    const pid = child.pid!;
    const atReady = rssBytes(pid);
    const samples: { second: number; mib: number }[] = [];
    const started = Date.now();
    const sampler = setInterval(() => samples.push({ second: Math.round((Date.now() - started) / 1000), mib: rssBytes(pid) / MiB }), 5_000);
    let result: Result;
    try {
      result = await load(port, '/mutate', body, seconds);
    } finally {
      clearInterval(sampler);
    }
    const after = rssBytes(pid);
    samples.push({ second: Math.round((Date.now() - started) / 1000), mib: after / MiB });
    return {
      seconds,
      rssAtReadyMiB: atReady / MiB,
      rssSamplesMiB: samples,
      rssAfterLoadMiB: after / MiB,
      peakMiB: Math.max(atReady / MiB, ...samples.map((s) => s.mib)),
      requestsPerSecond: result['2xx'] / result.duration,
      non2xx: result.non2xx,
      errors: result.errors,
    };
  } finally {
    await stop(child);
  }
}
