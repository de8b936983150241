// `tls.mode: files`: the serving key and certificate are files in a directory, typically a Secret
// volume written by cert-manager or an admin, and are reloaded when they change — without a restart
// and without dropping a request (the server swaps its secure context; open connections keep theirs).
//
// The kubelet updates a Secret volume atomically: it writes the new files into a fresh hidden
// directory and renames a `..data` symlink over the old one, so `tls.crt` -> `..data/tls.crt` changes
// all at once and the files themselves are never modified in place. Watching the two files would miss
// that (their inodes never change); the directory is watched instead, every event triggers a debounced
// re-read, and a periodic re-read catches what a watch can miss (the directory replaced, inotify
// limits, network filesystems). New material is validated before it is used: a half-written pair (an
// admin copying one file, then the other), or a certificate that does not name the Service, is
// refused and the old pair kept until a valid one appears.
import { X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { certificateCovers, certificateNames } from './certificates.ts';
import { CERT_FILES } from './local.ts';
import { checkServingMaterial, isMaterial } from './material.ts';
import { MaterialHolder, type TlsReadiness, type TlsSource } from './source.ts';

/** Where the files are, how often they are re-read besides on change events, and what they must name. */
export interface FilesSourceOptions {
  readonly dir: string;
  readonly resyncMs: number;
  /**
   * Names the certificate must cover: the API server calls `<tls.serviceName>.<namespace>.svc`,
   * and the admin configured tls.dnsNames for their own callers. A certificate that does not is
   * never served (the TLS handshake of every admission would fail), so the replica stays not
   * ready, saying what is missing.
   */
  readonly requiredNames: readonly string[];
}

/** The required names a certificate does not cover (a `*.` name must be in it as such). */
export function missingNames(certPem: string, required: readonly string[]): string[] {
  const leaf = new X509Certificate(certPem);
  const names = certificateNames(leaf).map((n) => n.toLowerCase());
  return required.filter((name) => (name.startsWith('*.') ? !names.includes(name.toLowerCase()) : !certificateCovers(leaf, name)));
}

/** Delay that coalesces the burst of events one Secret update makes into a single re-read. */
const DEBOUNCE_MS = 100;

/** Serves `tls.crt` and `tls.key` from a directory and follows their changes. */
export class FilesTlsSource extends MaterialHolder implements TlsSource {
  readonly mode = 'files' as const;
  readonly #options: FilesSourceOptions;
  readonly #now: () => Date;
  #problem: string | undefined = 'not read yet';
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: FilesSourceOptions, logger: Logger, now: () => Date) {
    super(logger);
    this.#options = options;
    this.#now = now;
  }

  async start(): Promise<void> {
    await this.resync();
    this.#watch();
    this.#poll = setInterval(() => {
      if (this.#watcher === undefined) this.#watch();
      void this.resync();
    }, this.#options.resyncMs);
    this.#poll.unref();
  }

  readiness(): TlsReadiness {
    const material = this.current();
    if (material === undefined) return { ready: false, reason: `no usable certificate in ${this.#options.dir}: ${this.#problem ?? 'not read yet'}` };
    if (material.notAfter.getTime() <= this.#now().getTime()) {
      return { ready: false, reason: `the certificate from ${this.#options.dir} expired on ${material.notAfter.toISOString()}` };
    }
    return { ready: true };
  }

  /** Re-reads the files now; concurrent calls share one read and a read requested meanwhile runs after it. */
  resync(): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#reload();
        } while (this.#again && !this.#stopped);
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
  }

  #watch(): void {
    if (this.#stopped) return;
    try {
      // Not persistent: the watch alone must not keep the process alive.
      const watcher = watch(this.#options.dir, { persistent: false }, () => {
        clearTimeout(this.#debounce);
        this.#debounce = setTimeout(() => void this.resync(), DEBOUNCE_MS);
        this.#debounce.unref();
      });
      watcher.on('error', (error) => {
        // E.g. the directory was removed: fall back to the periodic re-read, which also re-watches.
        this.logger.warn({ err: error, certDir: this.#options.dir }, 'watching the certificate directory stopped; re-reading periodically');
        watcher.close();
        if (this.#watcher === watcher) this.#watcher = undefined;
      });
      this.#watcher = watcher;
    } catch (error) {
      this.logger.warn(
        { certDir: this.#options.dir, error: (error as Error).message, resyncSeconds: this.#options.resyncMs / 1000 },
        'cannot watch the certificate directory; re-reading it periodically',
      );
    }
  }

  async #reload(): Promise<void> {
    const { dir } = this.#options;
    let cert: string;
    let key: string;
    try {
      [cert, key] = await Promise.all([
        readFile(join(dir, CERT_FILES.cert), 'utf8'),
        readFile(join(dir, CERT_FILES.key), 'utf8'),
      ]);
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      this.#report(e.code === 'ENOENT' ? `${e.path ?? 'a file'} does not exist` : `cannot read ${e.path ?? dir}: ${e.message}`);
      return;
    }
    const current = this.current();
    if (current !== undefined && current.cert === cert && current.key === key) {
      this.#report(undefined);
      return;
    }
    const checked = checkServingMaterial(key, cert, this.#now());
    if (!isMaterial(checked)) {
      this.#report(`${join(dir, CERT_FILES.cert)} and ${CERT_FILES.key}: ${checked.problem}`);
      return;
    }
    const missing = missingNames(cert, this.#options.requiredNames);
    if (missing.length > 0) {
      const names = certificateNames(new X509Certificate(cert));
      this.#report(
        `${join(dir, CERT_FILES.cert)} does not name ${missing.join(', ')} (it names ${names.length === 0 ? 'nothing' : names.join(', ')}; the API server calls ${this.#options.requiredNames[0] ?? 'the Service'})`,
      );
      return;
    }
    this.#report(undefined);
    this.swap(checked);
    this.logger.info(
      { certDir: dir, fingerprint: checked.fingerprint, notAfter: checked.notAfter, previous: current?.fingerprint },
      current === undefined ? 'serving certificate loaded' : 'serving certificate reloaded',
    );
  }

  /** Records the current problem and logs it once (not on every periodic re-read). */
  #report(problem: string | undefined): void {
    if (problem === this.#problem) return;
    this.#problem = problem;
    if (problem === undefined) return;
    const served = this.current();
    this.logger.warn(
      { certDir: this.#options.dir, problem, keptFingerprint: served?.fingerprint },
      served === undefined ? 'no usable serving certificate yet' : 'new certificate files refused; still serving the previous certificate',
    );
  }
}
