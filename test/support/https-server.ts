// A webhook server started in-process with real certificates on a free port, for the tests that
// must talk TLS to it (hostile input, overload). Built exactly as `serve` builds it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { pino, type Logger } from 'pino';
import { buildApp, type AppDeps } from '../../src/server/app.ts';
import { createMetrics } from '../../src/server/metrics.ts';
import { ensureLocalCertificates } from '../../src/tls/local.ts';
import { testConfig, testRuntime } from './config.ts';
import type { Target } from './raw-https.ts';

/** A listening test server and what the tests need to reach and observe it. */
export interface TestServer extends Target {
  readonly app: ReturnType<typeof buildApp>;
  /** Resolves once the server's side of the connection from client port `localPort` (of `address`, default 127.0.0.1) has closed. */
  serverSideClosed(localPort: number, address?: string): Promise<void>;
  close(): Promise<void>;
}

let certificates: Promise<{ dir: string; key: string; cert: string; ca: string }> | undefined;

/** Generates one CA and serving certificate per test file (key generation is the slow part). */
function sharedCertificates() {
  certificates ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'envoy-injector-test-tls-'));
    const { bundle } = await ensureLocalCertificates(dir, [], 30);
    return { dir, key: bundle.key, cert: bundle.cert, ca: bundle.caCert };
  })();
  return certificates;
}

/** Removes the certificates generated for this test file. */
export async function removeCertificates(): Promise<void> {
  if (certificates === undefined) return;
  rmSync((await certificates).dir, { recursive: true, force: true });
}

/** Starts a TLS webhook with the test config plus `env` overrides (ENVOY_INJECTOR_* names). */
export async function startServer(
  env: Record<string, string> = {},
  logger: Logger = pino({ level: 'silent' }),
  extra: Pick<AppDeps, 'admissionLimit' | 'leanMutate'> = {},
): Promise<TestServer> {
  const tls = await sharedCertificates();
  const config = testConfig(env);
  // With metrics, as serve builds it: tests can scrape what the server counted.
  const metrics = createMetrics({ config, runtime: testRuntime, processMetrics: false });
  const app = buildApp({ config, runtime: testRuntime, logger, metrics, tls: { key: tls.key, cert: tls.cert }, ...extra });
  // Server-side sockets by the client's port, so a test can wait for the server to see a close.
  // The server may finish its side of the handshake after the client has: waiters come first then.
  const closed = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const entry = (key: string) => {
    let found = closed.get(key);
    if (found === undefined) {
      let resolve = () => {};
      const promise = new Promise<void>((r) => (resolve = r));
      found = { promise, resolve };
      closed.set(key, found);
    }
    return found;
  };
  app.server.on('secureConnection', (socket: TLSSocket) => {
    const port = socket.remotePort;
    if (port === undefined) return;
    const { resolve } = entry(`${socket.remoteAddress ?? ''}:${port}`);
    // After the close listeners the server registered itself (request/response cleanup).
    socket.once('close', () => setImmediate(resolve));
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  return {
    app,
    port,
    ca: tls.ca,
    serverSideClosed: (localPort, address = '127.0.0.1') => entry(`${address}:${localPort}`).promise,
    close: () => app.close(),
  };
}
