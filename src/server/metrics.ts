// The webhook's Prometheus metrics (SPEC.md §8): one prom-client registry per app instance, so
// several apps in one process (tests) never share counters. Names and labels are documented in the
// README's "Metrics" table; label values come only from fixed sets, so cardinality stays bounded.
import { createHash } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RESYNC_REASONS, type ResyncReason } from '../kube/namespace-cache.ts';
import { defaultProxyConfig } from '../core/overrides.ts';
import { REASONS, WARNINGS } from '../core/reasons.ts';
import { canonicalJson, hashProxyConfig } from '../core/status.ts';
import type { InjectorConfig, InjectorRuntime } from '../core/types.ts';
import { RESULT_OF_ACTION, type AdmissionOutcome, type AdmissionResult, type AnswerPath } from './admission.ts';
import type { RefusalReason } from './admission-limit.ts';

/** Prefix of every metric the injector defines (Node process metrics keep their usual names). */
export const METRIC_PREFIX = 'envoy_injector_';

/** Reason label of an admission that failed inside the injector. */
export const INTERNAL_ERROR_REASON = 'internal-error';
/** Reason label for a code this build does not know (never expected; keeps cardinality bounded). */
export const UNKNOWN_LABEL = 'unknown';

/**
 * Buckets of the admission latency histogram, in seconds (Prometheus' base unit) at millisecond
 * scale: an injection takes well under a millisecond of CPU, and the API server's webhook timeout
 * is seconds, so 0.1 ms to 1 s covers both the normal case and a struggling replica.
 */
export const LATENCY_BUCKETS_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** Buckets of the patch size histogram, in bytes: the bootstrap in the sidecar's env makes it KBs. */
export const PATCH_SIZE_BUCKETS_BYTES = [1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144];

/** HTTP statuses a request is commonly rejected with before it reaches the admission (server/errors.ts). */
const REQUEST_ERROR_STATUSES: readonly number[] = [400, 408, 413, 415, 500, 503];

/** Reasons a bound refuses a request for (app.ts). */
const REFUSAL_REASONS: readonly RefusalReason[] = ['overloaded', 'peer-limit', 'body-timeout'];

/** The certificates whose expiry is exported, each read when /metrics is scraped. */
export interface CertificateExpiryGetters {
  /** notAfter of the certificate the webhook serves with, or undefined while none is loaded. */
  readonly serving?: () => Date | undefined;
  /** notAfter of the CA that signed it (the caBundle the API server trusts), when known. */
  readonly ca?: () => Date | undefined;
}

export interface MetricsOptions {
  readonly config: InjectorConfig;
  readonly runtime: InjectorRuntime;
  /** When the config was read; defaults to now. */
  readonly configLoadedAt?: Date;
  /** Expiry getters; TLS modes that reload their certificates return the current one. */
  readonly certificates?: CertificateExpiryGetters;
  /** The namespace watch cache, read at every scrape; without it its metrics have no series. */
  readonly namespaceCache?: { ageSeconds(): number | undefined; size(): number };
  /** Whether to export Node process metrics (CPU, memory, event loop, GC); default true. */
  readonly processMetrics?: boolean;
}

/** What the transport reports to the metrics about one admission (and, from the webhook, which path answered it). */
export type AdmissionSample = Pick<AdmissionOutcome, 'result' | 'reasons' | 'warnings' | 'patchBytes'> & { readonly path?: AnswerPath };

/** The paths an admission can be answered by (fast-patch.ts, admission.ts). */
const ANSWER_PATHS: readonly AnswerPath[] = ['hit', 'miss', 'reference'];

/** The injector's metrics: the registry to scrape and the hooks the transport calls. */
export interface InjectorMetrics {
  readonly registry: Registry;
  /** Content type of `render()`'s text (Prometheus text exposition format 0.0.4). */
  readonly contentType: string;
  /** Counts one answered AdmissionReview. */
  recordAdmission(sample: AdmissionSample, durationSeconds: number): void;
  /** Counts one request rejected before it was an admission (not JSON, too large, not a review). */
  recordRequestError(statusCode: number): void;
  /** Counts one (re)fill of the namespace cache, by why: start, expired (410 Gone) or error. */
  recordNamespaceResync(reason: ResyncReason): void;
  /** Counts one request refused by a bound (admission slots, the per-peer bound, the body deadline). */
  recordRefusal(reason: RefusalReason): void;
  /** Sets the config info gauge and load timestamp (at start, and again if the config is reloaded). */
  setConfig(config: InjectorConfig, runtime: InjectorRuntime, loadedAt: Date): void;
  /** Returns every metric in the text exposition format. */
  render(): Promise<string>;
}

/** Returns the label value for `value` if it is one of `known`, else `unknown`. */
function bounded(value: string, known: ReadonlySet<string>): string {
  return known.has(value) ? value : UNKNOWN_LABEL;
}

/** Returns a short hash of the whole configuration, to spot replicas running different configs. */
export function hashConfig(config: InjectorConfig): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex').slice(0, 16);
}

/** Returns a new registry holding every injector metric, with zeroed series for every known label. */
export function createMetrics(options: MetricsOptions): InjectorMetrics {
  const registry = new Registry();
  const registers = [registry];

  const admissions = new Counter({
    name: `${METRIC_PREFIX}admissions_total`,
    help: 'AdmissionReviews answered, by result and the reason that decided it (the first reason code).',
    labelNames: ['result', 'reason'],
    registers,
  });
  const duration = new Histogram({
    name: `${METRIC_PREFIX}admission_duration_seconds`,
    help: 'Time to answer an AdmissionReview once its body is parsed (decision, patch, encoding), by result.',
    labelNames: ['result'],
    buckets: LATENCY_BUCKETS_SECONDS,
    registers,
  });
  const patchSize = new Histogram({
    name: `${METRIC_PREFIX}patch_bytes`,
    help: 'Size of the JSON Patch returned for injected pods, in bytes (before base64).',
    buckets: PATCH_SIZE_BUCKETS_BYTES,
    registers,
  });
  const warnings = new Counter({
    name: `${METRIC_PREFIX}admission_warnings_total`,
    help: 'AdmissionReviews answered with at least one warning of this code.',
    labelNames: ['code'],
    registers,
  });
  const requestErrors = new Counter({
    name: `${METRIC_PREFIX}request_errors_total`,
    help: 'Requests to the webhook rejected before admission (not JSON, too large, not an AdmissionReview), by HTTP status.',
    labelNames: ['status'],
    registers,
  });
  const answers = new Counter({
    name: `${METRIC_PREFIX}fast_path_total`,
    help: 'AdmissionReviews answered, by path: hit (a cached patch template), miss (a template rendered and cached for it) or reference (decide and render in full: skips, denials, errors, debug logging, keys not cached).',
    labelNames: ['path'],
    registers,
  });
  const refused = new Counter({
    name: `${METRIC_PREFIX}requests_refused_total`,
    help: 'Requests refused by a bound before admission, by reason: overloaded (no admission slot), peer-limit (too many in progress from one address), body-timeout (body not received in time).',
    labelNames: ['reason'],
    registers,
  });
  const configInfo = new Gauge({
    name: `${METRIC_PREFIX}config_info`,
    help: 'Always 1; labels describe the running build and configuration.',
    labelNames: ['version', 'config_hash', 'proxy_config_hash', 'native_sidecar'],
    registers,
  });
  const configLoaded = new Gauge({
    name: `${METRIC_PREFIX}config_load_timestamp_seconds`,
    help: 'Unix time the configuration in use was loaded.',
    registers,
  });
  const { serving, ca } = options.certificates ?? {};
  const getters = { serving, ca };
  new Gauge({
    name: `${METRIC_PREFIX}certificate_expiry_timestamp_seconds`,
    help: 'Unix time the certificate expires (notAfter), by certificate: serving or ca.',
    labelNames: ['certificate'],
    registers,
    // Read at every scrape, so a reloaded or renewed certificate shows at once; a certificate not
    // loaded yet has no series rather than a 0 that would look expired.
    collect() {
      this.reset();
      for (const [certificate, get] of Object.entries(getters)) {
        let expiry: Date | undefined;
        try {
          expiry = get?.();
        } catch {
          expiry = undefined;
        }
        if (expiry !== undefined && Number.isFinite(expiry.getTime())) this.set({ certificate }, expiry.getTime() / 1000);
      }
    },
  });

  const cache = options.namespaceCache;
  new Gauge({
    name: `${METRIC_PREFIX}namespace_cache_age_seconds`,
    help: 'Seconds since the namespace watch cache last heard from the API server (a list or a watch event); no series without a cluster.',
    registers,
    collect() {
      this.reset();
      const age = cache?.ageSeconds();
      if (age !== undefined) this.set(age);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}namespace_cache_namespaces`,
    help: 'Namespaces in the namespace watch cache.',
    registers,
    collect() {
      this.reset();
      if (cache !== undefined) this.set(cache.size());
    },
  });
  const resyncs = new Counter({
    name: `${METRIC_PREFIX}namespace_cache_resyncs_total`,
    help: 'Full lists of the namespace watch cache, by reason: start, expired (the watch answered 410 Gone) or error (after a backoff).',
    labelNames: ['reason'],
    registers,
  });
  for (const reason of RESYNC_REASONS) resyncs.inc({ reason }, 0);

  const resultReasons = new Map<AdmissionResult, Set<string>>([
    ['injected', new Set()],
    ['reordered', new Set()],
    ['skipped', new Set()],
    ['denied', new Set()],
    ['error', new Set([INTERNAL_ERROR_REASON])],
  ]);
  for (const [code, { action }] of Object.entries(REASONS)) resultReasons.get(RESULT_OF_ACTION[action])?.add(code);
  const results: ReadonlySet<string> = new Set(resultReasons.keys());
  const warningCodes: ReadonlySet<string> = new Set(Object.keys(WARNINGS));

  // Zeroed series for every valid label combination: rate() and absent-series alerts work from the
  // first scrape, and a dashboard shows every reason even before it happens.
  for (const [result, reasons] of resultReasons) {
    for (const reason of reasons) admissions.inc({ result, reason }, 0);
    duration.zero({ result });
  }
  for (const code of warningCodes) warnings.inc({ code }, 0);
  for (const status of REQUEST_ERROR_STATUSES) requestErrors.inc({ status: String(status) }, 0);
  for (const reason of REFUSAL_REASONS) refused.inc({ reason }, 0);
  for (const path of ANSWER_PATHS) answers.inc({ path }, 0);

  // Every label combination is known ahead, so each series' child is bound once here rather than
  // looked up by its labels (hashing them) on every admission.
  const unknownAdmission = (result: string) => admissions.labels({ result, reason: UNKNOWN_LABEL });
  const admissionChildren = new Map(
    [...resultReasons].map(([result, reasons]) => [
      result,
      { reasons: new Map([...reasons].map((reason) => [reason, admissions.labels({ result, reason })])), unknown: unknownAdmission(result) },
    ]),
  );
  const unknownResult = { reasons: new Map<string, ReturnType<typeof admissions.labels>>(), unknown: unknownAdmission(UNKNOWN_LABEL) };
  const durationChildren = new Map([...results].map((result) => [result, duration.labels({ result })]));
  const warningChildren = new Map([...warningCodes].map((code) => [code, warnings.labels({ code })]));
  const pathChildren = new Map(ANSWER_PATHS.map((path) => [path, answers.labels({ path })]));

  const metrics: InjectorMetrics = {
    registry,
    contentType: registry.contentType,
    recordAdmission(sample, durationSeconds) {
      const children = admissionChildren.get(sample.result) ?? unknownResult;
      (children.reasons.get(sample.reasons[0] ?? UNKNOWN_LABEL) ?? children.unknown).inc();
      (durationChildren.get(sample.result) ?? duration.labels({ result: UNKNOWN_LABEL })).observe(durationSeconds);
      if (sample.patchBytes > 0) patchSize.observe(sample.patchBytes);
      const codes = sample.warnings;
      for (let i = 0; i < codes.length; i++) {
        const code = codes[i]!;
        // Counted once per admission, however often the code occurs in it.
        if (codes.indexOf(code) !== i) continue;
        (warningChildren.get(code) ?? warnings.labels({ code: UNKNOWN_LABEL })).inc();
      }
      if (sample.path !== undefined) pathChildren.get(sample.path)?.inc();
    },
    recordRequestError(statusCode) {
      // HTTP error statuses are a small fixed range, so the label stays bounded.
      const status = Number.isInteger(statusCode) && statusCode >= 400 && statusCode <= 599 ? String(statusCode) : UNKNOWN_LABEL;
      requestErrors.inc({ status });
    },
    recordRefusal(reason) {
      refused.inc({ reason: REFUSAL_REASONS.includes(reason) ? reason : UNKNOWN_LABEL });
    },
    setConfig(config, runtime, loadedAt) {
      const proxy = defaultProxyConfig(config, runtime);
      // One series at a time: a reloaded config replaces the old labels instead of adding to them.
      configInfo.reset();
      configInfo.set(
        {
          version: runtime.version,
          config_hash: hashConfig(config),
          proxy_config_hash: hashProxyConfig(proxy, runtime.version),
          native_sidecar: String(proxy.nativeSidecar),
        },
        1,
      );
      configLoaded.set(loadedAt.getTime() / 1000);
    },
    recordNamespaceResync(reason) {
      resyncs.inc({ reason: bounded(reason, new Set(RESYNC_REASONS)) });
    },
    render: () => registry.metrics(),
  };
  metrics.setConfig(options.config, options.runtime, options.configLoadedAt ?? new Date());
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  return metrics;
}
