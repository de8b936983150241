// The benchmark's bare server, run as its own process: node:https alone, with the same certificate
// and the same Node as the injector, reading each request's body, parsing the AdmissionReview and
// allowing it. What the webhook's /mutate is compared with: the least a server that answers
// reviews can do. Prints `{"port": N}` once listening; exits on SIGTERM.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';

const certDir = process.env['BENCH_CERT_DIR'];
if (certDir === undefined) throw new Error('BENCH_CERT_DIR is not set');

const server = createServer(
  { key: readFileSync(join(certDir, 'tls.key'), 'utf8'), cert: readFileSync(join(certDir, 'tls.crt'), 'utf8') },
  (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      let answer: string;
      try {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { apiVersion?: unknown; request?: { uid?: unknown } };
        answer = JSON.stringify({ apiVersion: review.apiVersion, kind: 'AdmissionReview', response: { uid: review.request?.uid, allowed: true } });
      } catch {
        response.writeHead(400).end();
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(answer) }).end(answer);
    });
  },
);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
