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

/** Returns a Node as the kubelet registers and updates it, running kubelet `kubeletVersion`. */
export function nodeObject(name: string, kubeletVersion: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'node.kubernetes.io/instance-type': 'm6i.large',
        'topology.kubernetes.io/zone': 'eu-west-1a',
      },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true' },
    },
    spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'], providerID: `aws:///eu-west-1a/i-0${name.length}f3c2b1a0e9d8c7` },
    status: {
      capacity: { cpu: '2', memory: '7941456Ki', pods: '29', 'ephemeral-storage': '20959212Ki' },
      allocatable: { cpu: '1930m', memory: '7251280Ki', pods: '29', 'ephemeral-storage': '18242267924' },
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          lastHeartbeatTime: '2025-06-01T10:00:00Z',
          lastTransitionTime: '2025-05-01T10:00:00Z',
          reason: 'KubeletReady',
          message: 'kubelet is posting ready status',
        },
      ],
      addresses: [
        { type: 'InternalIP', address: '10.0.1.17' },
        { type: 'Hostname', address: name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: 'ec2a1b5c7d9e4f0a8b6c4d2e0f1a3b5c',
        systemUUID: 'ec2a1b5c-7d9e-4f0a-8b6c-4d2e0f1a3b5c',
        bootID: '3f6c1e2a-9b8d-4c7e-a5f4-2d1c0b9a8e7f',
        kernelVersion: '6.1.132-147.221.amzn2023.x86_64',
        osImage: 'Amazon Linux 2023.7.20250512',
        containerRuntimeVersion: 'containerd://1.7.27',
        kubeletVersion,
        kubeProxyVersion: kubeletVersion,
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
    },
  };
}
