// `tls.mode: secret`: every replica runs the same reconciliation pass at start and then periodically
// — ensure the shared Secret (secret-bundle.ts), make the webhook's caBundle carry its trust bundle
// (kube/ca-bundle.ts), then serve its certificate. Re-running the pass is how a replaced Secret, an
// edited caBundle or a certificate renewed by another replica converges. Passes are idempotent and
// write only when something differs, so replicas running them concurrently never fight.
//
// Between passes a replica reads the caBundle alone, more often (every few seconds): its readiness
// follows what the API server trusts now, and when the caBundle no longer trusts the certificate it
// serves or differs from what it reconciled (another replica reset the CA, someone edited it), it
// runs a pass at once. After a pass that wrote something it runs one more soon after, to see that
// the replicas converged.
import type { Logger } from 'pino';
import { caBundlesTrust, reconcileCaBundle, webhookCaBundles, type WebhookCaBundle } from './ca-bundle.ts';
import type { KubeResources } from '../kube/resources.ts';
import { certificateExpiry, normalizePemBundle } from './certificates.ts';
import { checkServingMaterial, isMaterial, type ServingMaterial } from './material.ts';
import { ensureSecretBundle } from './secret-bundle.ts';
import { MaterialHolder, type TlsReadiness, type TlsSource } from './source.ts';

/** What the secret mode manages and how often it checks. */
export interface SecretSourceOptions {
  readonly namespace: string;
  readonly secretName: string;
  readonly webhookConfigName: string;
  /** Names of the serving certificate (the Service's names and tls.dnsNames). */
  readonly dnsNames: readonly string[];
  readonly renewBeforeDays: number;
  /** Interval between passes once everything is in order. */
  readonly resyncMs: number;
  /** Interval between reads of the caBundle alone (default TRUST_CHECK_MS; never above resyncMs). */
  readonly trustCheckMs?: number;
}

/** First retry delay after a failed or not-ready pass; doubles up to the resync interval. */
const FIRST_RETRY_MS = 1000;
/** After a pass that wrote, the next one comes this soon, to see the replicas converged. */
const SETTLE_MS = 2000;
/** Default interval between reads of the caBundle alone. */
export const TRUST_CHECK_MS = 10_000;

/**
 * How long the CAs trusted before a CA reset stay trusted: five resync intervals (every replica has
 * run several passes and switched by then, even one whose pass failed once), at least five minutes.
 */
export function carryGraceMs(resyncMs: number): number {
  return Math.max(5 * resyncMs, 5 * 60 * 1000);
}

/** ±10% jitter, so replicas started together do not keep calling the API server in lockstep. */
const jitter = (ms: number) => Math.round(ms * (0.9 + Math.random() * 0.2));

/** Self-bootstraps the serving certificate in a Secret and keeps the webhook's caBundle in sync. */
export class SecretTlsSource extends MaterialHolder implements TlsSource {
  readonly mode = 'secret' as const;
  readonly #options: SecretSourceOptions;
  readonly #resources: KubeResources;
  readonly #now: () => Date;
  /** Why the Secret could not be used in the last pass that failed, while nothing is served yet. */
  #secretProblem: string | undefined = 'not read yet';
  /** The caBundles last read (undefined until a read succeeded). */
  #webhooks: readonly WebhookCaBundle[] | undefined;
  /** The trust bundle of the Secret as last ensured: what every caBundle should be. */
  #trustBundle: string | undefined;
  /** A definite answer that makes the replica not ready (e.g. no such MutatingWebhookConfiguration). */
  #webhookProblem: string | undefined;
  #lastError: string | undefined;
  /** The failure last logged at warn, so a failure that persists is not logged on every retry. */
  #lastWarned: string | undefined;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  /** Consecutive trust checks that found the caBundle changed: each doubles the next interval. */
  #checkBackoff = 0;
  /** Whether the pass now scheduled is the quick one after a write (only one in a row). */
  #settling = false;
  #running: Promise<void> | undefined;
  /** Passes started so far: a trust check whose read a pass overtook discards it. */
  #passes = 0;
  #again = false;
  #stopped = false;

  constructor(options: SecretSourceOptions, resources: KubeResources, logger: Logger, now: () => Date) {
    super(logger);
    this.#options = options;
    this.#resources = resources;
    this.#now = now;
  }

  async start(): Promise<void> {
    await this.resync();
  }

  readiness(): TlsReadiness {
    const { namespace, secretName, webhookConfigName } = this.#options;
    const material = this.current();
    if (material === undefined) {
      return { ready: false, reason: `waiting for the certificate in Secret ${namespace}/${secretName}: ${this.#secretProblem ?? 'not read yet'}` };
    }
    if (material.notAfter.getTime() <= this.#now().getTime()) {
      return { ready: false, reason: `the serving certificate expired on ${material.notAfter.toISOString()}` };
    }
    if (this.#webhookProblem !== undefined) return { ready: false, reason: this.#webhookProblem };
    if (this.#webhooks === undefined) {
      return { ready: false, reason: `caBundle of MutatingWebhookConfiguration ${webhookConfigName} not checked yet: ${this.#lastError ?? 'pending'}` };
    }
    if (!caBundlesTrust(this.#webhooks, material.cert, this.#now())) {
      const stale = this.#webhooks.filter((w) => !caBundlesTrust([w], material.cert, this.#now())).map((w) => w.name);
      return {
        ready: false,
        reason: `the caBundle of MutatingWebhookConfiguration ${webhookConfigName} does not trust the serving certificate yet (${stale.join(', ') || 'no webhooks'})`,
      };
    }
    return { ready: true };
  }

  /** Runs a pass now; concurrent calls share it, and a call made during a pass runs another after it. */
  resync(): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    clearTimeout(this.#timer);
    this.#running = (async () => {
      let wrote = false;
      try {
        do {
          this.#again = false;
          wrote = (await this.#pass()) || wrote;
        } while (this.#again && !this.#stopped);
      } finally {
        this.#running = undefined;
        this.#schedule(wrote);
      }
    })();
    return this.#running;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#checkTimer);
  }

  #schedule(wrote: boolean): void {
    if (this.#stopped) return;
    const healthy = this.#lastError === undefined && this.readiness().ready;
    this.#failures = healthy ? 0 : this.#failures + 1;
    // One quick pass after a write sees whether a replica racing this one undid it; never two in a
    // row, so a tool that keeps reverting the caBundle is not fought every few seconds.
    const settle = healthy && wrote && !this.#settling;
    this.#settling = settle;
    const base = !healthy
      ? Math.min(this.#options.resyncMs, FIRST_RETRY_MS * 2 ** Math.min(this.#failures - 1, 20))
      : settle
        ? Math.min(this.#options.resyncMs, SETTLE_MS)
        : this.#options.resyncMs;
    this.#timer = setTimeout(() => void this.resync(), jitter(base));
    this.#timer.unref();
    this.#scheduleCheck();
  }

  /** Arms the next read of the caBundle alone, unless passes already come as often. */
  #scheduleCheck(): void {
    clearTimeout(this.#checkTimer);
    if (this.#stopped) return;
    const interval = Math.min(this.#options.resyncMs, (this.#options.trustCheckMs ?? TRUST_CHECK_MS) * 2 ** Math.min(this.#checkBackoff, 20));
    if (interval >= this.#options.resyncMs) return;
    this.#checkTimer = setTimeout(() => void this.#checkTrust().finally(() => this.#scheduleCheck()), jitter(interval));
    this.#checkTimer.unref();
  }

  /**
   * Reads the caBundle alone: readiness follows it at once, and a pass runs now when it no longer
   * trusts the served certificate or differs from the trust bundle this replica reconciled.
   */
  async #checkTrust(): Promise<void> {
    if (this.#running !== undefined || this.#stopped) return;
    const passes = this.#passes;
    // A pass that started meanwhile has read (or written) a newer caBundle: keep that one.
    const webhooks = await this.#readCaBundles(() => this.#passes === passes && this.#running === undefined);
    if (webhooks === undefined || webhooks.length === 0 || this.#running !== undefined || this.#stopped) return;
    const served = this.current();
    const untrusted = served !== undefined && !caBundlesTrust(webhooks, served.cert, this.#now());
    const desired = this.#trustBundle === undefined ? undefined : normalizePemBundle(this.#trustBundle);
    const changed = desired !== undefined && webhooks.some((w) => w.caBundle !== desired);
    if (!untrusted && !changed) {
      this.#checkBackoff = 0;
      return;
    }
    this.#checkBackoff++;
    this.logger.info(
      { webhookConfiguration: this.#options.webhookConfigName, trustsServedCertificate: !untrusted },
      'caBundle changed since the last pass; running a pass now',
    );
    await this.resync();
  }

  /**
   * Reads the webhooks' caBundles into the basis of readiness, unless `current()` says a newer read
   * superseded this one; returns them, or undefined when the read failed or was superseded (the last
   * ones read stay the basis: an API server hiccup must not take every replica out of the Service).
   */
  async #readCaBundles(current: () => boolean = () => true): Promise<readonly WebhookCaBundle[] | undefined> {
    const { webhookConfigName } = this.#options;
    try {
      const configuration = await this.#resources.getWebhookConfiguration(webhookConfigName);
      if (!current()) return undefined;
      const webhooks = configuration === undefined ? [] : webhookCaBundles(configuration);
      this.#setWebhooks(configuration === undefined ? 'not-found' : 'found', webhooks);
      return webhooks;
    } catch (error) {
      this.logger.debug({ error: (error as Error).message }, 'reading the caBundle failed');
      return undefined;
    }
  }

  #setWebhooks(outcome: 'not-found' | 'found', webhooks: readonly WebhookCaBundle[]): void {
    const { webhookConfigName } = this.#options;
    this.#webhooks = webhooks;
    this.#webhookProblem =
      outcome === 'not-found'
        ? `MutatingWebhookConfiguration ${webhookConfigName} not found`
        : webhooks.length === 0
          ? `MutatingWebhookConfiguration ${webhookConfigName} has no webhooks`
          : undefined;
  }

  /** The CAs every webhook's caBundle holds now (PEM), which a CA reset keeps trusted for a while. */
  async #trustedNow(): Promise<string> {
    const configuration = await this.#resources.getWebhookConfiguration(this.#options.webhookConfigName);
    if (configuration === undefined) return '';
    return webhookCaBundles(configuration)
      .map((w) => w.caBundle ?? '')
      .join('');
  }

  /** Runs one pass; returns whether it wrote the Secret or the caBundle. */
  async #pass(): Promise<boolean> {
    const { namespace, secretName, webhookConfigName } = this.#options;
    this.#passes++;
    this.#lastError = undefined;
    let wrote = false;
    let candidate: ServingMaterial;
    let trustBundle: string;
    let caNotAfter: Date;
    try {
      const ensured = await ensureSecretBundle(
        this.#resources,
        { namespace, name: secretName, dnsNames: this.#options.dnsNames, renewBeforeDays: this.#options.renewBeforeDays },
        this.#now(),
        { trustedNow: () => this.#trustedNow(), graceMs: carryGraceMs(this.#options.resyncMs) },
      );
      const checked = checkServingMaterial(ensured.bundle.key, ensured.bundle.cert, this.#now());
      if (!isMaterial(checked)) throw new Error(`the certificate in Secret ${namespace}/${secretName} cannot be served: ${checked.problem}`);
      candidate = checked;
      trustBundle = ensured.bundle.trustBundle;
      caNotAfter = certificateExpiry(ensured.bundle.caCert);
      this.#secretProblem = undefined;
      this.#trustBundle = trustBundle;
      wrote = ensured.action !== 'reused' && ensured.action !== 'adopted';
      if (ensured.action !== 'reused') {
        this.logger.info(
          {
            secret: `${namespace}/${secretName}`,
            action: ensured.action,
            reason: ensured.reason,
            conflicts: ensured.conflicts,
            notAfter: checked.notAfter,
            ...(ensured.bundle.carriedUntil === undefined ? {} : { carriedCasUntil: ensured.bundle.carriedUntil }),
          },
          'serving certificate Secret reconciled',
        );
      }
    } catch (error) {
      this.#fail(error, `Secret ${namespace}/${secretName}`);
      this.#secretProblem = (error as Error).message;
      // Still read the caBundle: whether it trusts what is served now decides readiness.
      await this.#readCaBundles();
      return wrote;
    }

    try {
      const reconciled = await reconcileCaBundle(this.#resources, webhookConfigName, trustBundle);
      this.#setWebhooks(reconciled.outcome === 'not-found' ? 'not-found' : 'found', reconciled.webhooks);
      // Nobody had changed it: the trust checks go back to their normal interval.
      if (reconciled.outcome === 'in-sync') this.#checkBackoff = 0;
      if (reconciled.outcome === 'updated') {
        wrote = true;
        this.logger.info(
          { webhookConfiguration: webhookConfigName, webhooks: reconciled.webhooks.map((w) => w.name), conflicts: reconciled.conflicts },
          'caBundle updated',
        );
      }
    } catch (error) {
      // The last caBundles read stay the basis of readiness: an API server hiccup must not take
      // every replica out of the Service at once.
      this.#fail(error, `caBundle of MutatingWebhookConfiguration ${webhookConfigName}`);
    }

    if (this.#lastError === undefined) this.#lastWarned = undefined;
    const current = this.current();
    if (current !== undefined && current.cert === candidate.cert) return wrote;
    // Switch only to a certificate the API server will trust, unless what is served now is no better.
    const switchNow =
      current === undefined ||
      this.#webhooks === undefined ||
      caBundlesTrust(this.#webhooks, candidate.cert, this.#now()) ||
      !caBundlesTrust(this.#webhooks, current.cert, this.#now());
    if (!switchNow) {
      this.logger.warn({ fingerprint: candidate.fingerprint }, 'new serving certificate not trusted by the caBundle yet; still serving the previous one');
      this.#lastError = 'new serving certificate waiting for the caBundle';
      return wrote;
    }
    this.swap(candidate);
    this.setCaNotAfter(caNotAfter);
    this.logger.info(
      { fingerprint: candidate.fingerprint, notAfter: candidate.notAfter, previous: current?.fingerprint },
      current === undefined ? 'serving certificate loaded' : 'serving certificate switched',
    );
    return wrote;
  }

  #fail(error: unknown, what: string): void {
    const message = (error as Error).message ?? String(error);
    // Logged at warn once per distinct message; repeats of the same failure at debug.
    if (message !== this.#lastWarned) this.logger.warn({ error: message, what }, 'TLS reconciliation failed; retrying');
    else this.logger.debug({ error: message, what }, 'TLS reconciliation failed again');
    this.#lastError = message;
    this.#lastWarned = message;
  }
}
