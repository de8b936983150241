// The local default as a TlsSource: certificates generated into (or reused from) a directory at
// start; always ready once loaded.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { InjectorError } from '../errors.ts';
import { certificateExpiry } from './certificates.ts';
import { CERT_FILES, ensureLocalCertificates } from './local.ts';
import { checkServingMaterial, isMaterial } from './material.ts';
import { MaterialHolder, type TlsReadiness, type TlsSource } from './source.ts';

/** Where the local default keeps its certificates and what they name. */
export interface LocalSourceOptions {
  readonly dir: string;
  /** Names besides localhost, 127.0.0.1 and ::1. */
  readonly dnsNames: readonly string[];
  readonly renewBeforeDays: number;
}

/** Serves the CA-signed certificate of the local default (`tls.mode: local`). */
export class LocalTlsSource extends MaterialHolder implements TlsSource {
  readonly mode = 'local' as const;
  readonly #options: LocalSourceOptions;
  readonly #now: () => Date;

  constructor(options: LocalSourceOptions, logger: Logger, now: () => Date) {
    super(logger);
    this.#options = options;
    this.#now = now;
  }

  async start(): Promise<void> {
    const { dir, dnsNames, renewBeforeDays } = this.#options;
    const certificates = await ensureLocalCertificates(dir, dnsNames, renewBeforeDays, this.#now());
    const material = checkServingMaterial(certificates.bundle.key, certificates.bundle.cert, this.#now());
    if (!isMaterial(material)) throw new InjectorError('tls', `the certificate in ${dir} cannot be served: ${material.problem}`);
    this.swap(material);
    this.setCaNotAfter(certificateExpiry(certificates.bundle.caCert));
    this.logger.info(
      { certDir: dir, action: certificates.action, reason: certificates.reason, caFile: join(dir, CERT_FILES.caCert), notAfter: material.notAfter },
      'serving certificate ready',
    );
  }

  readiness(): TlsReadiness {
    return this.current() === undefined ? { ready: false, reason: 'no serving certificate loaded yet' } : { ready: true };
  }

  async resync(): Promise<void> {
    // The local default is prepared once at start (and renewed at the next start).
  }

  stop(): void {}
}
