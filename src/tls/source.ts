// Where the serving certificate comes from (SPEC.md §7): the local default, files mounted from a
// Secret, or a Secret the replicas bootstrap themselves. Every mode is a TlsSource: it holds the
// current material, says whether the server is ready, and tells listeners when the material changes
// so the running HTTPS server can switch without a restart.
import type { Logger } from 'pino';
import type { InjectorConfig } from '../core/types.ts';
import type { ServingMaterial } from './material.ts';

/** Whether the server should receive traffic as far as TLS is concerned, and why not. */
export interface TlsReadiness {
  readonly ready: boolean;
  readonly reason?: string;
}

/** A source of serving material for the webhook's HTTPS server. */
export interface TlsSource {
  readonly mode: InjectorConfig['tls']['mode'];
  /**
   * Loads the material a first time. What a later retry may fix (files not there yet, API server
   * unreachable) is reported through readiness; only a local directory that cannot be used throws.
   */
  start(): Promise<void>;
  /** The material to serve, or undefined while none could be loaded yet. */
  current(): ServingMaterial | undefined;
  /** Ready once material is loaded (and, in `secret` mode, the webhook's caBundle trusts it). */
  readiness(): TlsReadiness;
  /** When the certificate being served expires (for the expiry metric), or undefined before one is loaded. */
  certificateNotAfter(): Date | undefined;
  /** When the CA that signed it expires, when the source knows its CA (local and secret modes). */
  caNotAfter(): Date | undefined;
  /** Calls `listener` with every new material; returns a function that unsubscribes. */
  onChange(listener: (material: ServingMaterial) => void): () => void;
  /** Checks the source again now (files re-read, Secret and caBundle reconciled). */
  resync(): Promise<void>;
  /** Stops watching and timers. */
  stop(): void;
}

/** Holds the current material and its listeners; the modes build on it. */
export abstract class MaterialHolder {
  #material: ServingMaterial | undefined;
  #caNotAfter: Date | undefined;
  readonly #listeners = new Set<(material: ServingMaterial) => void>();
  protected readonly logger: Logger;

  protected constructor(logger: Logger) {
    this.logger = logger;
  }

  /** The material being served, if any. */
  current(): ServingMaterial | undefined {
    return this.#material;
  }

  /** When the certificate being served expires. */
  certificateNotAfter(): Date | undefined {
    return this.#material?.notAfter;
  }

  /** When the CA behind the served certificate expires, if known. */
  caNotAfter(): Date | undefined {
    return this.#caNotAfter;
  }

  /** Records the expiry of the CA behind the served certificate. */
  protected setCaNotAfter(notAfter: Date | undefined): void {
    this.#caNotAfter = notAfter;
  }

  /** Subscribes to material changes. */
  onChange(listener: (material: ServingMaterial) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Makes `material` current and tells the listeners, unless it is what is already served. */
  protected swap(material: ServingMaterial): boolean {
    const previous = this.#material;
    if (previous !== undefined && previous.cert === material.cert && previous.key === material.key) return false;
    this.#material = material;
    for (const listener of this.#listeners) {
      try {
        listener(material);
      } catch (error) {
        this.logger.error({ err: error }, 'applying the new serving certificate failed');
      }
    }
    return true;
  }
}
