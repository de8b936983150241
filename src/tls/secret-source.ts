// `tls.mode: secret`: every replica runs the same reconciliation pass at start and then periodically
// — ensure the shared Secret (secret-bundle.ts), make the webhook's caBundle carry its trust bundle
// (kube/ca-bundle.ts), then serve its certificate. Re-running the pass is how a replaced Secret, an
// edited caBundle or a certificate renewed by another replica converges. Passes are idempotent and
// write only when something differs, so replicas running them concurrently never fight.
import type { Logger } from 'pino';
import { caBundlesTrust, reconcileCaBundle, type WebhookCaBundle } from '../kube/ca-bundle.ts';
import type { KubeResources } from '../kube/resources.ts';
import { certificateExpiry } from './certificates.ts';
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
}

/** First retry delay after a failed or not-ready pass; doubles up to the resync interval. */
const FIRST_RETRY_MS = 1000;

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
  /** A definite answer that makes the replica not ready (e.g. no such MutatingWebhookConfiguration). */
  #webhookProblem: string | undefined;
  #lastError: string | undefined;
  /** The failure last logged at warn, so a failure that persists is not logged on every retry. */
  #lastWarned: string | undefined;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
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
      try {
        do {
          this.#again = false;
          await this.#pass();
        } while (this.#again && !this.#stopped);
      } finally {
        this.#running = undefined;
        this.#schedule();
      }
    })();
    return this.#running;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped) return;
    const healthy = this.#lastError === undefined && this.readiness().ready;
    this.#failures = healthy ? 0 : this.#failures + 1;
    const base = healthy ? this.#options.resyncMs : Math.min(this.#options.resyncMs, FIRST_RETRY_MS * 2 ** Math.min(this.#failures - 1, 20));
    // ±10% jitter, so replicas started together do not keep calling the API server in lockstep.
    const delay = Math.round(base * (0.9 + Math.random() * 0.2));
    this.#timer = setTimeout(() => void this.resync(), delay);
    this.#timer.unref();
  }

  async #pass(): Promise<void> {
    const { namespace, secretName, webhookConfigName } = this.#options;
    this.#lastError = undefined;
    let candidate: ServingMaterial;
    let trustBundle: string;
    let caNotAfter: Date;
    try {
      const ensured = await ensureSecretBundle(
        this.#resources,
        { namespace, name: secretName, dnsNames: this.#options.dnsNames, renewBeforeDays: this.#options.renewBeforeDays },
        this.#now(),
      );
      const checked = checkServingMaterial(ensured.bundle.key, ensured.bundle.cert, this.#now());
      if (!isMaterial(checked)) throw new Error(`the certificate in Secret ${namespace}/${secretName} cannot be served: ${checked.problem}`);
      candidate = checked;
      trustBundle = ensured.bundle.trustBundle;
      caNotAfter = certificateExpiry(ensured.bundle.caCert);
      this.#secretProblem = undefined;
      if (ensured.action !== 'reused') {
        this.logger.info(
          { secret: `${namespace}/${secretName}`, action: ensured.action, reason: ensured.reason, conflicts: ensured.conflicts, notAfter: checked.notAfter },
          'serving certificate Secret reconciled',
        );
      }
    } catch (error) {
      this.#fail(error, `Secret ${namespace}/${secretName}`);
      this.#secretProblem = (error as Error).message;
      return;
    }

    try {
      const reconciled = await reconcileCaBundle(this.#resources, webhookConfigName, trustBundle);
      this.#webhooks = reconciled.webhooks;
      this.#webhookProblem =
        reconciled.outcome === 'not-found'
          ? `MutatingWebhookConfiguration ${webhookConfigName} not found`
          : reconciled.webhooks.length === 0
            ? `MutatingWebhookConfiguration ${webhookConfigName} has no webhooks`
            : undefined;
      if (reconciled.outcome === 'updated') {
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
    if (current !== undefined && current.cert === candidate.cert) return;
    // Switch only to a certificate the API server will trust, unless what is served now is no better.
    const switchNow =
      current === undefined ||
      this.#webhooks === undefined ||
      caBundlesTrust(this.#webhooks, candidate.cert, this.#now()) ||
      !caBundlesTrust(this.#webhooks, current.cert, this.#now());
    if (!switchNow) {
      this.logger.warn({ fingerprint: candidate.fingerprint }, 'new serving certificate not trusted by the caBundle yet; still serving the previous one');
      this.#lastError = 'new serving certificate waiting for the caBundle';
      return;
    }
    this.swap(candidate);
    this.setCaNotAfter(caNotAfter);
    this.logger.info(
      { fingerprint: candidate.fingerprint, notAfter: candidate.notAfter, previous: current?.fingerprint },
      current === undefined ? 'serving certificate loaded' : 'serving certificate switched',
    );
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
