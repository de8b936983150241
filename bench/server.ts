// The benchmark's webhook server, run as a child process: the built app as `serve` builds it —
// serve's logger (production level, written synchronously, stdout being /dev/null here) and its
// metrics — plus the baseline route that only `benchBaseline` registers. Prints `{"port": N}` once
// listening; exits on SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { importBuilt } from './processes.ts';

const certDir = process.env['BENCH_CERT_DIR'];
if (certDir === undefined) throw new Error('BENCH_CERT_DIR is not set');

const { loadConfig } = await importBuilt<typeof import('../src/config.ts')>('config.js');
const { buildApp } = await importBuilt<typeof import('../src/server/app.ts')>('server/app.js');
const { VERSION } = await importBuilt<typeof import('../src/version.ts')>('version.js');
const { createLogger } = await importBuilt<typeof import('../src/serve.ts')>('serve.js');
const { createMetrics } = await importBuilt<typeof import('../src/server/metrics.ts')>('server/metrics.js');

// The defaults, with native sidecars (a current cluster) fixed rather than asked of a cluster.
const config = loadConfig({ env: { ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' } });
const logger = createLogger(config, '/dev/null');
const runtime = { version: VERSION, nativeSidecarSupported: true };
// serve's metrics too: every admission is counted and timed, and the process collectors run.
const metrics = createMetrics({ config, runtime });
const app = buildApp({
  config,
  runtime,
  logger,
  metrics,
  tls: { key: readFileSync(join(certDir, 'tls.key'), 'utf8'), cert: readFileSync(join(certDir, 'tls.crt'), 'utf8') },
  benchBaseline: true,
});
await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ port: (app.server.address() as { port: number }).port })}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
