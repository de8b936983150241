// `npm run bench`: measures the built injector (dist/, built by the npm script first) and prints a
// table; the figures also go to bench/results/latest.json. Speed is judged here, as ratios against
// baselines measured in the same run, never in tests.
//
//   npm run bench              the full run recorded in BENCHMARKS.md (about four and a half minutes)
//   npm run bench -- --quick   shorter runs, for trying changes (figures not comparable)
//   npm run bench -- --instructions
//                              also counts instructions per request under valgrind's callgrind
//                              (bare server and /mutate, both pods): a figure that drifts far less
//                              with the machine's load than timings do; about six minutes more
//                              (with --quick: fewer requests, rough counts)
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { measureGrowth, measureHostile, measureLargePod } from './measure-core.ts';
import { compareRoutes, memoryUnderLoad } from './measure-http.ts';
import { measureInstructions, type InstructionResults } from './measure-instructions.ts';
import { measurePodSize } from './measure-size.ts';
import { measureColdStart } from './measure-start.ts';
import { largePod as makeLargePod, reviewOf, typicalPod } from './pods.ts';
import { freePort, importBuilt, ROOT } from './processes.ts';
import { formatReport, judge, judgeSize, type BenchResults } from './report.ts';

const quick = process.argv.includes('--quick');
const instructions = process.argv.includes('--instructions');
const unknown = process.argv.slice(2).filter((a) => a !== '--quick' && a !== '--instructions');
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown argument ${unknown.join(' ')} (known: --quick, --instructions)\n`);
  process.exit(2);
}
const settings = quick
  ? { secondsPerRun: 2, warmupSeconds: 2, memorySeconds: 10, startRuns: 2, rounds: 3, warmupRequests: 3_000, countedRequests: 500 }
  : { secondsPerRun: 6, warmupSeconds: 8, memorySeconds: 60, startRuns: 5, rounds: 7, warmupRequests: 6_000, countedRequests: 2_000 };

function commit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} (with local changes)` : head;
  } catch {
    return 'unknown';
  }
}

const log = (message: string) => process.stderr.write(`bench: ${message}\n`);

const started = performance.now();
const loadAverageBefore = loadavg();
const { ensureLocalCertificates } = await importBuilt<typeof import('../src/tls/local.ts')>('tls/local.js');
const certDir = mkdtempSync(join(tmpdir(), 'envoy-injector-bench-'));
try {
  const { bundle } = await ensureLocalCertificates(certDir, [], 30);
  const review = JSON.stringify(reviewOf(typicalPod()));
  // The two pods of the throughput and instruction rows.
  const reviews = { typical: review, 'large (64 KB, 1,500 env vars)': JSON.stringify(reviewOf(makeLargePod())) };

  log('bytes added to a pod…');
  const size = await measurePodSize();
  log('large pod CPU…');
  const largePod = await measureLargePod(settings.rounds);
  log('growth with containers…');
  const growth = await measureGrowth(undefined, settings.rounds);
  log('hostile reviews…');
  const hostile = await measureHostile(settings.rounds, quick ? 2 : 5);
  log('cold start…');
  const coldStart = await measureColdStart(certDir, bundle.caCert, settings.startRuns);
  log(`/mutate vs a bare node:https server, typical and large pod (${2 * (8 * settings.secondsPerRun + 4 * settings.warmupSeconds)} s)…`);
  const routes = await compareRoutes(certDir, bundle.caCert, reviews, settings.secondsPerRun, settings.warmupSeconds);
  log(`memory under ${settings.memorySeconds} s of load…`);
  const memory = await memoryUnderLoad(certDir, bundle.caCert, await freePort(), review, settings.memorySeconds);
  let counted: InstructionResults = { measured: false, reason: 'not asked for (npm run bench -- --instructions)' };
  if (instructions) {
    log(`instructions per request under callgrind: ${settings.warmupRequests} warm-up and ${settings.countedRequests} counted requests per pod and server…`);
    counted = await measureInstructions(certDir, reviews, { warmup: settings.warmupRequests, measured: settings.countedRequests });
    if (!counted.measured) log(`instructions not measured: ${counted.reason}`);
  }

  const results: BenchResults = {
    generatedAt: new Date().toISOString(),
    command: `npm run bench${quick || instructions ? ` --${quick ? ' --quick' : ''}${instructions ? ' --instructions' : ''}` : ''}`,
    conditions: {
      node: process.version,
      cpuModel: cpus()[0]?.model ?? 'unknown',
      cpus: cpus().length,
      loadAverageBefore,
      loadAverageAfter: loadavg(),
      commit: commit(),
      wallSeconds: (performance.now() - started) / 1000,
    },
    routes,
    largePod,
    coldStart,
    memory,
    growth,
    hostile,
    size,
    instructions: counted,
    targets: [...judge(routes, largePod, growth, hostile), ...judgeSize(size, coldStart)],
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(formatReport(results));
  log('results written to bench/results/latest.json');
  // Figures of failing requests measure nothing: say so in the exit code (missed targets do not).
  const failures =
    routes.reduce((sum, r) => sum + [r.bare, r.bareWithAnswer, r.baseline, r.mutate].reduce((n, f) => n + f.non2xx + f.errors, 0), 0) + memory.non2xx + memory.errors;
  if (failures > 0) {
    log(`${failures} requests failed during the load runs: the figures above are not valid`);
    process.exitCode = 1;
  }
} finally {
  rmSync(certDir, { recursive: true, force: true });
}
