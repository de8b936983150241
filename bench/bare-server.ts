// The benchmark's bare server, run as its own process: node:https alone, with the same certificate
// and the same Node as the injector, reading each request's body, parsing the AdmissionReview and
// allowing it. What the webhook's /mutate is compared with: the least a server that answers
// reviews can do. Prints `{"port": N}` once listening; exits on SIGTERM.
//
// With BENCH_RECORDED_ANSWERS (a JSON file of path → [text before the uid, text after it]), a POST
// to one of those paths is parsed the same way and answered with /mutate's recorded answer around
// this review's uid: the body /mutate sends (the headers are node's, not fastify's: a few bytes),
// without the work of making it. What that costs over the plain allow is the part of the gap that
// the answer's size alone explains.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';

const certDir = process.env['BENCH_CERT_DIR'];
if (certDir === undefined) throw new Error('BENCH_CERT_DIR is not set');
const recordedFile = process.env['BENCH_RECORDED_ANSWERS'];
const recorded = new Map<string, readonly [string, string]>(
  recordedFile === undefined ? [] : Object.entries(JSON.parse(readFileSync(recordedFile, 'utf8')) as Record<string, [string, string]>),
);

const server = createServer(
  { key: readFileSync(join(certDir, 'tls.key'), 'utf8'), cert: readFileSync(join(certDir, 'tls.crt'), 'utf8') },
  (request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      let answer: string;
      try {
        const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { apiVersion?: unknown; request?: { uid?: unknown } };
        const around = recorded.get(request.url ?? '');
        answer =
          around === undefined
            ? JSON.stringify({ apiVersion: review.apiVersion, kind: 'AdmissionReview', response: { uid: review.request?.uid, allowed: true } })
            : `${around[0]}${JSON.stringify(String(review.request?.uid))}${around[1]}`;
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
