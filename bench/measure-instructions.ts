// Instructions per request, counted by valgrind's callgrind: `npm run bench -- --instructions`.
//
// Wall-clock and CPU-time figures on a shared machine drift by ±20 % between runs of the same build;
// the number of instructions a server executes per request much less (repeatable within a few per
// cent). Each server (bench/bare-server.ts, bench/server.ts) runs under `valgrind --tool=callgrind`
// with instrumentation off and gets, per review, one autocannon run over 10 connections: after the
// warm-up's answers, instrumentation is switched on (`callgrind_control -i on`) for a fixed number
// of answers, then off, and the count is dumped and read. User-space instructions of every thread of
// the process are counted; the kernel's share (TLS syscalls, the network stack) is not.
//
// One run rather than a warm-up run and a counted run (as until 15h): a new run opens new
// connections, and the counted window then held their TLS handshakes and a burst of V8's optimising
// compiler — TurboFan jobs were 17–30 % of such counts, after 4,000 and even 24,000 warm-up
// requests; on the warm connections they are 2–7 % (typical pod, 6,000 warm-up). Each count is
// still split: the compiler's jobs (the inclusive count of
// `OptimizingCompileDispatcher::CompileTask::RunInternal`, read with callgrind_annotate) and the
// rest, the work of the requests; the ratio is taken of the rest. A job already running when
// counting starts may be counted in the rest (callgrind sees its call only from then on), so the
// rest is at most a little high. Of the rest, the inclusive count of `JSON.parse` is reported too:
// the review's parse, the same work in both servers (for the typical pod ~60 % of the bare
// server's instructions), so the figures show how much of the budget the webhook's own work has.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon, { type Result } from 'autocannon';
import { cleanEnv, portLine, reviewLoad, ROOT, stop } from './processes.ts';

/** Instructions per request of one server for one review. */
export interface InstructionFigures {
  readonly server: string;
  readonly path: string;
  readonly requests: number;
  /** Everything counted, divided by the requests. */
  readonly instructionsPerRequest: number;
  /** Of which the optimising compiler's background jobs (still at work after the warm-up); undefined when not found in the dump. */
  readonly compilerInstructionsPerRequest: number | undefined;
  /** The rest: what a request costs once the code is optimised. */
  readonly steadyInstructionsPerRequest: number;
  /**
   * Of the rest, `JSON.parse` (inclusive): the review's parse, which both servers do alike, so
   * what is left beyond it is each server's own work. Undefined when not found in the dump.
   */
  readonly parseInstructionsPerRequest: number | undefined;
}

/** One pod: the bare server against /mutate, by instructions. */
export interface InstructionComparison {
  readonly pod: string;
  readonly warmupRequests: number;
  readonly bare: InstructionFigures;
  readonly mutate: InstructionFigures;
  /** bare ÷ /mutate without the compiler's jobs: the direction of the throughput targets (1 = as cheap as the bare server). */
  readonly ratio: number;
  /** The same of everything counted, the compiler's jobs included. */
  readonly totalRatio: number;
}

export type InstructionResults =
  | { readonly measured: true; readonly valgrind: string; readonly comparisons: readonly InstructionComparison[] }
  | { readonly measured: false; readonly reason: string };

const CONNECTIONS = 10;
/** Under valgrind a server starts and answers tens of times slower: generous limits. */
const START_LIMIT_MS = 180_000;

/** The version line of a command, or undefined when it cannot be run. */
function versionOf(command: string, args: readonly string[]): string | undefined {
  const run = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  return run.status === 0 ? `${run.stdout}${run.stderr}`.trim().split('\n')[0] : undefined;
}

/** Requests sent after the counted ones, so that the load stays the same until counting stops. */
const TAIL = 5 * CONNECTIONS;

/**
 * Sends `warmup` + `measured` + TAIL requests over CONNECTIONS connections as one autocannon run,
 * calling `start` once `warmup` answers have come and `end` once `measured` more have. One run, so
 * the connections (and their TLS handshakes, ~2 M instructions each) are made before counting
 * starts, as on a server that keeps its connections to the API server.
 */
async function sendCounted(port: number, path: string, body: string, warmup: number, measured: number, start: () => void, end: () => void): Promise<Result> {
  // A request under instrumentation can take tens of milliseconds; none should time out.
  const instance = autocannon({ ...reviewLoad(port, path, body, CONNECTIONS), amount: warmup + measured + TAIL, timeout: 60 });
  let answered = 0;
  let failure: unknown;
  instance.on('response', () => {
    answered += 1;
    try {
      if (answered === warmup) start();
      else if (answered === warmup + measured) end();
    } catch (error) {
      failure ??= error;
      instance.stop();
    }
  });
  const result = await instance;
  if (failure !== undefined) throw failure;
  return result;
}

/** The function whose inclusive count is the optimising compiler's background work (V8 11, Node 20). */
const COMPILER_JOB = 'v8::internal::OptimizingCompileDispatcher::CompileTask::RunInternal()';
/** The C++ side of `JSON.parse` (V8 11, Node 20): both servers parse the same review with it. */
const JSON_PARSE = 'v8::internal::Builtin_JsonParse(int, unsigned long*, v8::internal::Isolate*)';

/**
 * The inclusive instruction counts of `functions` in a callgrind dump, one callgrind_annotate pass;
 * a function missing from the dump (it did not run, or this Node's V8 names it otherwise) has none.
 */
function inclusiveCounts(dump: string, functions: readonly string[]): Map<string, number> {
  const run = spawnSync('callgrind_annotate', ['--inclusive=yes', '--threshold=100', dump], { encoding: 'utf8', timeout: 120_000, maxBuffer: 256 * 1024 * 1024 });
  if (run.status !== 0) throw new Error(`callgrind_annotate ${dump} failed: ${run.stderr || run.error?.message}`);
  const lines = run.stdout.split('\n');
  const counts = new Map<string, number>();
  for (const name of functions) {
    // Lines read `   124,310,745 (17.33%)  ???:v8::internal::…::RunInternal() [/usr/bin/node]`.
    const line = lines.find((l) => l.includes(`:${name} `) || l.endsWith(`:${name}`));
    const count = line === undefined ? undefined : /^\s*([\d,]+)\s/.exec(line)?.[1];
    if (count !== undefined) counts.set(name, Number(count.replaceAll(',', '')));
  }
  return counts;
}

function control(pid: number, ...args: string[]): void {
  const run = spawnSync('callgrind_control', [...args, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  if (run.status !== 0) throw new Error(`callgrind_control ${args.join(' ')} failed: ${run.stderr || run.stdout}`);
}

/**
 * Runs `script` under callgrind and, for each review, one run of requests (sendCounted): counts the
 * instructions of `measured` requests after `warmup` of them.
 */
async function countServer(
  script: string,
  server: string,
  path: string,
  certDir: string,
  bodies: Readonly<Record<string, string>>,
  warmup: number,
  measured: number,
): Promise<Record<string, InstructionFigures>> {
  const outDir = mkdtempSync(join(tmpdir(), 'envoy-injector-callgrind-'));
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      // V8 writes and rewrites machine code in anonymous memory: valgrind must notice.
      '--smc-check=all-non-file',
      `--callgrind-out-file=${join(outDir, 'callgrind.out.%p')}`,
      process.execPath,
      '--import',
      'tsx',
      script,
    ],
    { cwd: ROOT, env: cleanEnv({ BENCH_CERT_DIR: certDir }), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4_000);
  });
  try {
    const port = await portLine(child, `${script} under valgrind`, START_LIMIT_MS, () => stderr);
    const figures: Record<string, InstructionFigures> = {};
    let dumps = 0;
    for (const [pod, body] of Object.entries(bodies)) {
      const run = await sendCounted(
        port,
        path,
        body,
        warmup,
        measured,
        () => {
          control(child.pid!, '-z');
          control(child.pid!, '-i', 'on');
        },
        () => control(child.pid!, '-i', 'off'),
      );
      // Every request answered means both toggles ran (a failed toggle has thrown by now).
      const sent = warmup + measured + TAIL;
      if (run['2xx'] !== sent) throw new Error(`${server}: ${sent - run['2xx']} of ${sent} requests failed`);
      control(child.pid!, '-d');
      dumps += 1;
      // The dump is written asynchronously by the traced process: wait for the file.
      const name = `callgrind.out.${child.pid}.${dumps}`;
      // Its last line, `totals: N`, says the file is complete; N is the instruction count.
      let total: RegExpExecArray | null = null;
      for (let waited = 0; total === null && waited < 120_000; waited += 200) {
        if (readdirSync(outDir).includes(name)) total = /^totals:\s*(\d+)/m.exec(readFileSync(join(outDir, name), 'utf8'));
        if (total === null) await sleep(200);
      }
      if (total === null) throw new Error(`${server}: callgrind wrote no complete dump ${name}`);
      const counted = Number(total[1]);
      const counts = inclusiveCounts(join(outDir, name), [COMPILER_JOB, JSON_PARSE]);
      const compiler = counts.get(COMPILER_JOB);
      const parse = counts.get(JSON_PARSE);
      figures[pod] = {
        server,
        path,
        requests: measured,
        instructionsPerRequest: counted / measured,
        compilerInstructionsPerRequest: compiler === undefined ? undefined : compiler / measured,
        steadyInstructionsPerRequest: (counted - (compiler ?? 0)) / measured,
        parseInstructionsPerRequest: parse === undefined ? undefined : parse / measured,
      };
    }
    return figures;
  } finally {
    await stop(child);
    rmSync(outDir, { recursive: true, force: true });
  }
}

/**
 * Instructions per request of the bare server and of /mutate for each review; `measured: false`
 * with the reason when valgrind (or callgrind_control, or callgrind_annotate) is not installed.
 */
export async function measureInstructions(
  certDir: string,
  bodies: Readonly<Record<string, string>>,
  { warmup, measured }: { warmup: number; measured: number },
): Promise<InstructionResults> {
  const valgrind = versionOf('valgrind', ['--version']);
  if (valgrind === undefined) return { measured: false, reason: 'valgrind is not installed (apt-get install valgrind)' };
  if (spawnSync('callgrind_control', ['-h'], { timeout: 30_000 }).error !== undefined) {
    return { measured: false, reason: 'callgrind_control is not installed (it comes with valgrind)' };
  }
  if (spawnSync('callgrind_annotate', ['--version'], { timeout: 30_000 }).error !== undefined) {
    return { measured: false, reason: 'callgrind_annotate is not installed (it comes with valgrind)' };
  }
  const bare = await countServer('bench/bare-server.ts', 'bare node:https', '/', certDir, bodies, warmup, measured);
  const mutate = await countServer('bench/server.ts', '/mutate', '/mutate', certDir, bodies, warmup, measured);
  return {
    measured: true,
    valgrind,
    comparisons: Object.keys(bodies).map((pod) => ({
      pod,
      warmupRequests: warmup,
      bare: bare[pod]!,
      mutate: mutate[pod]!,
      ratio: bare[pod]!.steadyInstructionsPerRequest / mutate[pod]!.steadyInstructionsPerRequest,
      totalRatio: bare[pod]!.instructionsPerRequest / mutate[pod]!.instructionsPerRequest,
    })),
  };
}
