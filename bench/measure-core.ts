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
  const { admit, answerAdmission, createAdmissionFastPath } = await importBuilt<AdmissionModule>('server/admission.js');
  const { loadConfig } = await importBuilt<ConfigModule>('config.js');
  const config = loadConfig({ env: { ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' } });
  const runtime = { version: 'bench', nativeSidecarSupported: true };
  const fast = createAdmissionFastPath(config, runtime);
  // What /mutate does with a parsed body: the fast path, the envelope as text.
  const answer = (review: unknown) => answerAdmission(review, config, runtime, fast);
  return { injectPod, admit, answer, config, runtime };
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
  /** What /mutate runs on the parsed review: the fast path and the answer as text, µs. */
  readonly answerMicros: number;
}

/** Measures the large pod: 1,500 environment variables, 64 KiB of JSON. */
export async function measureLargePod(rounds = 7, iterations = 300): Promise<LargePodFigures> {
  const { injectPod, admit, answer, config, runtime } = await loadCore();
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
      answer: () => answer(review),
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
    answerMicros: figures['answer']!,
  };
}

/** CPU per admission for one pod size. */
export interface GrowthPoint {
  readonly containers: number;
  readonly podBytes: number;
  /** Pod bytes relative to the smallest pod's. */
  readonly sizeRatio: number;
  /** What /mutate runs on the parsed review (fast path, answer as text), µs. */
  readonly answerMicros: number;
  /** The same with the parsing of the body: the whole admission's CPU but the transport's, µs. */
  readonly parseAndAnswerMicros: number;
  /** parseAndAnswer relative to the smallest pod's. */
  readonly ratioToOne: number;
  /** Growth exponent from the previous size in pod bytes: ln(t2/t1) / ln(b2/b1); 1 is linear. */
  readonly exponentFromPrevious?: number;
}

/** Measures an admission's CPU for pods 1×, 4× and 16× the typical one (by containers like its one). */
export async function measureGrowth(sizes: readonly number[] = [1, 4, 16], rounds = 7, iterations = 200): Promise<GrowthPoint[]> {
  const { answer } = await loadCore();
  const bodies = new Map(sizes.map((n) => [n, JSON.stringify(reviewOf(podOfContainers(n)))]));
  const parsed = new Map([...bodies].map(([n, body]) => [n, JSON.parse(body) as unknown]));
  for (const [n, review] of parsed) {
    const result = answer(review).record.result;
    if (result !== 'injected') throw new Error(`the ${n}-container pod was not injected (${result})`);
  }
  const figures = measure(
    Object.fromEntries(
      sizes.flatMap((n) => [
        [`answer ${n}`, () => answer(parsed.get(n))],
        [`both ${n}`, () => answer(JSON.parse(bodies.get(n)!))],
      ]),
    ),
    rounds,
    iterations,
  );
  const podBytes = (n: number) => JSON.stringify(podOfContainers(n)).length;
  const first = sizes[0]!;
  return sizes.map((n, i) => {
    const previous = i === 0 ? undefined : sizes[i - 1]!;
    const both = figures[`both ${n}`]!;
    return {
      containers: n,
      podBytes: podBytes(n),
      sizeRatio: podBytes(n) / podBytes(first),
      answerMicros: figures[`answer ${n}`]!,
      parseAndAnswerMicros: both,
      ratioToOne: both / figures[`both ${first}`]!,
      ...(previous === undefined
        ? {}
        : { exponentFromPrevious: Math.log(both / figures[`both ${previous}`]!) / Math.log(podBytes(n) / podBytes(previous)) }),
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
