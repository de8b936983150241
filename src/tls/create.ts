// Picks the TlsSource of the configured `tls.mode`, and the placeholder certificate the server
// starts with while a source has nothing to serve yet.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { InjectorConfig } from '../core/types.ts';
import { ConfigError } from '../errors.ts';
import type { KubeResources } from '../kube/resources.ts';
import { serviceDnsNames } from './certificates.ts';
import { FilesTlsSource } from './files-source.ts';
import { LocalTlsSource } from './local-source.ts';
import { checkServingMaterial, isMaterial, type ServingMaterial } from './material.ts';
import type { TlsSource } from './source.ts';

/** What a TlsSource needs besides the config. */
export interface TlsSourceDeps {
  readonly logger: Logger;
  /** Access to the API server (secret mode needs it). */
  readonly kubeConfig?: KubeConfig | undefined;
  /** Overrides the API access built from kubeConfig (tests). */
  readonly resources?: KubeResources;
  /** The clock (tests move it to exercise renewal). */
  readonly now?: () => Date;
}

/**
 * Returns the TlsSource of the configured `tls.mode`. The Kubernetes client (most of a start's
 * time) is loaded only for `secret`, the one mode that talks to the API server.
 */
export async function createTlsSource(config: InjectorConfig, deps: TlsSourceDeps): Promise<TlsSource> {
  const now = deps.now ?? (() => new Date());
  const resyncMs = config.tls.resyncSeconds * 1000;
  switch (config.tls.mode) {
    case 'local':
      return new LocalTlsSource({ dir: config.tls.certDir, dnsNames: config.tls.dnsNames, renewBeforeDays: config.tls.renewBeforeDays }, deps.logger, now);
    case 'files':
      return new FilesTlsSource(
        { dir: config.tls.certDir, resyncMs, requiredNames: [`${config.tls.serviceName}.${config.namespace}.svc`, ...config.tls.dnsNames] },
        deps.logger,
        now,
      );
    case 'secret': {
      const [{ createKubeResources }, { SecretTlsSource }] = await Promise.all([import('../kube/resources.ts'), import('./secret-source.ts')]);
      const resources = deps.resources ?? (deps.kubeConfig === undefined ? undefined : createKubeResources(deps.kubeConfig));
      if (resources === undefined) {
        throw new ConfigError(
          'tls.mode',
          'tls.mode secret needs the Kubernetes API: run in a pod with a service account token, or set KUBECONFIG',
        );
      }
      return new SecretTlsSource(
        {
          namespace: config.namespace,
          secretName: config.tls.secretName,
          webhookConfigName: config.tls.webhookConfigName,
          dnsNames: [...new Set([...serviceDnsNames(config.tls.serviceName, config.namespace), ...config.tls.dnsNames])],
          renewBeforeDays: config.tls.renewBeforeDays,
          resyncMs,
        },
        resources,
        deps.logger,
        now,
      );
    }
  }
}

/**
 * Returns a throwaway self-signed certificate for the server to start with while the real one is not
 * loaded yet: /healthz answers, /readyz says why it is not ready, and nothing trusts it.
 */
export async function placeholderMaterial(now: Date = new Date()): Promise<ServingMaterial> {
  const { generate } = await import('selfsigned');
  const generated = await generate([{ name: 'commonName', value: 'envoy-injector (no certificate loaded yet)' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 60 * 60 * 1000),
    notAfterDate: new Date(now.getTime() + 24 * 60 * 60 * 1000),
  });
  const material = checkServingMaterial(generated.private, generated.cert, now);
  if (!isMaterial(material)) throw new Error(`placeholder certificate: ${material.problem}`);
  return material;
}
