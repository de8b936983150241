// `envoy-injector serve`: load config, prepare TLS, listen, and shut down gracefully on SIGTERM.
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { InjectorConfig } from './core/types.ts';
import { InjectorError } from './errors.ts';
import { resolveRuntime } from './runtime.ts';
import { buildApp } from './server/app.ts';
import { CERT_FILES, ensureLocalCertificates } from './tls/local.ts';
import { VERSION } from './version.ts';

/** Creates the process logger: pino JSON lines on stdout. */
export function createLogger(config: InjectorConfig): Logger {
  return pino({ level: config.logLevel, base: { service: 'envoy-injector', version: VERSION } });
}

/** Serves the webhook until SIGTERM/SIGINT; resolves once it has shut down. */
export async function serve(config: InjectorConfig): Promise<void> {
  const logger = createLogger(config);
  const { runtime, nativeSidecarDetail } = await resolveRuntime(config);

  if (config.tls.mode !== 'local') {
    throw new InjectorError('tls', `tls.mode ${config.tls.mode} is not available in this build; use local`);
  }
  const certificates = await ensureLocalCertificates(config.tls.certDir, config.tls.dnsNames, config.tls.renewBeforeDays);
  logger.info(
    { certDir: config.tls.certDir, action: certificates.action, reason: certificates.reason, caFile: join(config.tls.certDir, CERT_FILES.caCert) },
    'serving certificate ready',
  );

  const app = buildApp({ config, runtime, logger, tls: { key: certificates.bundle.key, cert: certificates.bundle.cert } });
  await app.listen({ host: config.server.host, port: config.server.port });
  logger.info(
    { url: `https://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${config.server.port}`, nativeSidecar: nativeSidecarDetail },
    'envoy-injector listening',
  );

  // Keep serving if something escapes a handler: the webhook sits in the path of every pod creation.
  process.on('unhandledRejection', (error) => logger.error({ err: error }, 'unhandled rejection'));
  process.on('uncaughtException', (error) => logger.error({ err: error }, 'uncaught exception'));

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal, graceMs: config.server.shutdownGraceMs }, 'shutting down: finishing in-flight requests');
      const deadline = setTimeout(() => {
        logger.warn('grace period over: exiting with requests still open');
        process.exit(1);
      }, config.server.shutdownGraceMs);
      deadline.unref();
      // Closing the server stops Node's request-timeout checks, so a client that never finishes its
      // request would hold the shutdown to the end of the grace period. Anything still open once a
      // whole request timeout has passed is past its own timeout: close it, as the timeout would.
      const cutoff = setTimeout(() => {
        logger.warn({ requestTimeoutMs: config.server.requestTimeoutMs }, 'closing connections still open after the request timeout');
        app.server.closeAllConnections();
      }, config.server.requestTimeoutMs);
      cutoff.unref();
      app.close().then(
        () => {
          logger.info('shut down');
          resolve();
        },
        (error: unknown) => {
          logger.error({ err: error }, 'error while shutting down');
          resolve();
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
