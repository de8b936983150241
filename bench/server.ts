// The benchmark's webhook server, run as a child process: the built app exactly as `serve` builds
// it (production log level, output to /dev/null), plus the baseline route that only `benchBaseline`
// registers. Prints `{"port": N}` once listening; exits on SIGTERM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { importBuilt } from './processes.ts';

const certDir = process.env['BENCH_CERT_DIR'];
if (certDir === undefined) throw new Error('BENCH_CERT_DIR is not set');

const { loadConfig } = await importBuilt<typeof import('../src/config.ts')>('config.js');
const { buildApp } = await importBuilt<typeof import('../src/server/app.ts')>('server/app.js');
const { VERSION } = await importBuilt<typeof import('../src/version.ts')>('version.js');

// The defaults, with native sidecars (a current cluster) fixed rather than asked of a cluster.
const config = loadConfig({ env: { ENVOY_INJECTOR_NATIVE_SIDECAR: 'true' } });
const logger = pino({ level: config.logLevel }, pino.destination({ dest: '/dev/null', sync: false }));
const app = buildApp({
  config,
  runtime: { version: VERSION, nativeSidecarSupported: true },
  logger,
  tls: { key: readFileSync(join(certDir, 'tls.key'), 'utf8'), cert: readFileSync(join(certDir, 'tls.crt'), 'utf8') },
  benchBaseline: true,
});
await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ port: (app.server.address() as { port: number }).port })}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
