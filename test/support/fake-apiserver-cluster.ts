// Fixtures for tests against the fake API server: the webhook configuration as manifests/ installs
// it, injector configs for the secret mode, a logger the tests can read, and a TLS client that trusts
// exactly what the API server would (the webhook's caBundle) and checks the Service name.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { parseAllDocuments } from 'yaml';
import type { InjectorConfig } from '../../src/core/types.ts';
import { testConfig } from './config.ts';
import type { KubeObject } from './fake-apiserver.ts';

/** The injector's namespace in these tests (as in manifests/). */
export const NAMESPACE = 'envoy-injector';
/** The name the API server calls the webhook by (`<svc>.<ns>.svc`). */
export const SERVICE_HOST = `envoy-injector.${NAMESPACE}.svc`;

/** Returns the MutatingWebhookConfiguration of manifests/ as the API server would store it. */
export function manifestWebhookConfiguration(): KubeObject {
  const text = readFileSync(new URL('../../manifests/mutatingwebhookconfiguration.yaml', import.meta.url), 'utf8');
  return parseAllDocuments(text)[0]?.toJS() as KubeObject;
}

/** Returns the config of an injector in `tls.mode: secret`, listening on a free port of 127.0.0.1. */
export function secretModeConfig(env: Record<string, string> = {}): InjectorConfig {
  const config = testConfig({ ENVOY_INJECTOR_TLS_MODE: 'secret', POD_NAMESPACE: NAMESPACE, ...env });
  return { ...config, server: { ...config.server, host: '127.0.0.1', port: 0 } };
}

/** A pino logger whose JSON lines the test can read. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, any>);
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/** What one HTTPS request got back. */
export interface HttpsResult {
  readonly status: number;
  readonly body: string;
  /** SHA-256 fingerprint of the certificate the server presented. */
  readonly fingerprint: string;
  /** Whether the request went over a connection that was already open (keep-alive). */
  readonly reused: boolean;
}

/**
 * Sends one HTTPS request to 127.0.0.1:`port` that trusts only `ca` and expects the certificate to
 * name `servername` (as the API server calling the Service would).
 */
export function httpsRequest(
  port: number,
  path: string,
  options: { ca: string; servername?: string; agent?: Agent; method?: string; body?: string },
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        ca: options.ca,
        servername: options.servername ?? SERVICE_HOST,
        // Verify the name the API server would use, not the address connected to.
        checkServerIdentity: (_host, cert) => {
          const x509 = new X509Certificate(cert.raw);
          return x509.checkHost(options.servername ?? SERVICE_HOST) === undefined
            ? new Error(`certificate does not name ${options.servername ?? SERVICE_HOST}`)
            : undefined;
        },
        agent: options.agent ?? false,
        headers: options.body === undefined ? {} : { 'content-type': 'application/json' },
        timeout: 10_000,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), fingerprint, reused: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Polls `check` until it returns true, failing with `what` after `ms`. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
