// CPU time of the pure core, in this process: the large pod against JSON.parse of the same body
// (measured in the same run, so the ratio holds on any machine), and how the time per injection
// grows with the number of containers.
import { admissionContext } from '../src/core/context.ts';
import { importBuilt } from './processes.ts';
import { largePod, LARGE_POD_ENV_VARS, podOfContainers, reviewOf } from './pods.ts';

type InjectModule = typeof import('../src/core/inject.ts');
type AdmissionModule = typeof import('../src/server/admission.ts');
type ConfigModule = typeof import('../src/config.ts');

/** CPU microseconds (user + system) per call of `fn`, over `iterations` calls. */
function cpuMicrosPerCall(fn: () => unknown, iterations: number): number {
  const start = process.cpuUsage();
  for (let i = 0; i < iterations; i++) fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / iterations;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Measures each function in `rounds` interleaved rounds of `iterations` calls (after a warm-up,
 * so the JIT has settled) and returns the median CPU µs per call of each: interleaving spreads
 * whatever else the machine does over all of them alike.
 */
function measure(fns: Readonly<Record<string, () => unknown>>, rounds: number, iterations: number): Record<string, number> {
  for (const fn of Object.values(fns)) cpuMicrosPerCall(fn, Math.max(50, iterations / 4));
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(fns).map((k) => [k, []]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, fn] of Object.entries(fns)) samples[name]!.push(cpuMicrosPerCall(fn, iterations));
  }
  return Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]));
}

async function loadCore() {
  const { injectPod } = await importBuilt<InjectModule>('core/inject.js');
  const { admit } = await importBuilt<AdmissionModule>('server/admission.js');
  const { loadConfig } = await importBuilt<ConfigModule>('config.js');
  const config = loadConfig({ env: { ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' } });
  const runtime = { version: 'bench', nativeSidecarSupported: true };
  return { injectPod, admit, config, runtime };
}

/** CPU figures of the large pod (SPEC.md §6). */
export interface LargePodFigures {
  readonly podBytes: number;
  readonly reviewBytes: number;
  readonly envVars: number;
  /** Baseline: JSON.parse of the review body, µs. */
  readonly jsonParseMicros: number;
  /** injectPod on the parsed pod: decision, bootstrap, containers, patch, µs. */
  readonly injectMicros: number;
  /** admit on the parsed review: envelope, injectPod, encoded response with base64 patch, µs. */
  readonly admitMicros: number;
  /** admit relative to JSON.parse of the same body. */
  readonly admitToParseRatio: number;
}

/** Measures the large pod: 1,500 environment variables, 64 KiB of JSON. */
export async function measureLargePod(rounds = 7, iterations = 300): Promise<LargePodFigures> {
  const { injectPod, admit, config, runtime } = await loadCore();
  const pod = largePod();
  const body = JSON.stringify(reviewOf(pod));
  const review = JSON.parse(body) as { request: { object: unknown } };
  const ctx = admissionContext({ namespace: 'shop' });
  // Sanity: it is injected, so the figures are those of a real injection.
  const result = injectPod(review.request.object, ctx, config, runtime);
  if (result.decision.action !== 'inject') throw new Error(`the large pod was not injected: ${JSON.stringify(result.decision.reasons)}`);
  const figures = measure(
    {
      parse: () => JSON.parse(body),
      inject: () => injectPod(review.request.object, ctx, config, runtime),
      admit: () => admit(review, config, runtime),
    },
    rounds,
    iterations,
  );
  return {
    podBytes: JSON.stringify(pod).length,
    reviewBytes: body.length,
    envVars: LARGE_POD_ENV_VARS,
    jsonParseMicros: figures['parse']!,
    injectMicros: figures['inject']!,
    admitMicros: figures['admit']!,
    admitToParseRatio: figures['admit']! / figures['parse']!,
  };
}

/** Time per injection for one pod size. */
export interface GrowthPoint {
  readonly containers: number;
  readonly podBytes: number;
  readonly injectMicros: number;
  /** Time relative to the 1-container pod. */
  readonly ratioToOne: number;
  /** Growth exponent from the previous size: ln(t2/t1) / ln(n2/n1); 1 is linear. */
  readonly exponentFromPrevious?: number;
}

/** Measures injectPod for pods of 1, 10, 50 and 200 containers. */
export async function measureGrowth(sizes: readonly number[] = [1, 10, 50, 200], rounds = 7, iterations = 200): Promise<GrowthPoint[]> {
  const { injectPod, config, runtime } = await loadCore();
  const ctx = admissionContext({ namespace: 'shop' });
  const pods = new Map(sizes.map((n) => [n, podOfContainers(n)]));
  for (const [n, pod] of pods) {
    const action = injectPod(pod, ctx, config, runtime).decision.action;
    if (action !== 'inject') throw new Error(`the ${n}-container pod was not injected (${action})`);
  }
  const figures = measure(Object.fromEntries(sizes.map((n) => [String(n), () => injectPod(pods.get(n), ctx, config, runtime)])), rounds, iterations);
  const one = figures[String(sizes[0])]!;
  return sizes.map((n, i) => {
    const micros = figures[String(n)]!;
    const previous = i === 0 ? undefined : sizes[i - 1]!;
    return {
      containers: n,
      podBytes: JSON.stringify(pods.get(n)).length,
      injectMicros: micros,
      ratioToOne: micros / one,
      ...(previous === undefined ? {} : { exponentFromPrevious: Math.log(micros / figures[String(previous)]!) / Math.log(n / previous) }),
    };
  });
}

/** CPU figures of one hostile review (bench/hostile-reviews.ts). */
export interface HostileFigures {
  readonly name: string;
  readonly reviewBytes: number;
  /** Baseline: JSON.parse of the body, µs. */
  readonly jsonParseMicros: number;
  /** admit on the parsed review (envelope, decision, any injection, encoded answer), µs. */
  readonly admitMicros: number;
  readonly admitToParseRatio: number;
  /** What the webhook answered: injected, skipped, denied. */
  readonly result: string;
}

/**
 * Measures each ~2 MB hostile review: median CPU of JSON.parse of its body and of admit on the
 * parsed review, over `rounds` interleaved rounds of `iterations` calls after two warm-up calls
 * each (a call costs milliseconds, so fewer than for the small pods).
 */
export async function measureHostile(rounds = 7, iterations = 5): Promise<HostileFigures[]> {
  const { admit, config, runtime } = await loadCore();
  const { hostileReviews } = await import('./hostile-reviews.ts');
  const reviews = hostileReviews().map((review) => ({ ...review, parsed: JSON.parse(review.body) as unknown }));
  const samples = reviews.map(() => ({ parse: [] as number[], admit: [] as number[] }));
  for (const review of reviews) for (let i = 0; i < 2; i++) (JSON.parse(review.body), admit(review.parsed, config, runtime));
  for (let round = 0; round < rounds; round++) {
    reviews.forEach((review, i) => {
      samples[i]!.parse.push(cpuMicrosPerCall(() => JSON.parse(review.body), iterations));
      samples[i]!.admit.push(cpuMicrosPerCall(() => admit(review.parsed, config, runtime), iterations));
    });
  }
  return reviews.map((review, i) => {
    const jsonParseMicros = median(samples[i]!.parse);
    const admitMicros = median(samples[i]!.admit);
    return {
      name: review.name,
      reviewBytes: review.body.length,
      jsonParseMicros,
      admitMicros,
      admitToParseRatio: admitMicros / jsonParseMicros,
      result: admit(review.parsed, config, runtime).result,
    };
  });
}
