// The bound on concurrent admissions (server.maxConcurrentAdmissions), over real HTTPS: beyond it
// the webhook answers 503 with Retry-After at once; a slot comes back when its request is answered,
// abandoned or timed out; probes are never refused. Deterministic: requests are held past the
// bound with `Expect: 100-continue` (the server's `100 Continue` proves it took the request, and
// client and server share this event loop, so the slot is taken before the client sees it).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { checkInjectedPod } from './support/check-injected.ts';
import { removeCertificates, startServer, type TestServer } from './support/https-server.ts';
import { applyJsonPatch } from './support/patch.ts';
import { firstData, httpsGet, httpsPost, openTls, readUntilClosed, requestHead, STACK_TRACE, type RawResult } from './support/raw-https.ts';
import { decodeResponse, reviewFor } from './support/review.ts';


/** A hung connection fails its test instead of the whole run. */
const TEST_TIMEOUT_MS = 60_000;
const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx' }] },
};

after(removeCertificates);

/** An admission whose headers the server has taken (it said 100 Continue) and whose body is held back. */
interface Held {
  readonly uid: string;
  readonly socket: TLSSocket;
  /** The client's port, which names the connection on the server's side (gone once closed). */
  readonly port: number;
  readonly result: Promise<RawResult>;
  /** Sends the body: the admission completes. */
  finish(): Promise<RawResult>;
}

async function hold(server: TestServer, uid: string): Promise<Held> {
  const body = JSON.stringify(reviewFor(POD, { uid }));
  const socket = await openTls(server);
  const result = readUntilClosed(socket);
  const interim = firstData(socket);
  socket.write(
    requestHead('/mutate', { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Expect: '100-continue', Connection: 'close' }),
  );
  assert.match(await interim, /^HTTP\/1\.1 100 Continue/);
  return {
    uid,
    socket,
    port: socket.localPort as number,
    result,
    finish: () => {
      socket.write(body);
      return result;
    },
  };
}

function assertInjected(result: RawResult, uid: string): void {
  assert.equal(result.status, 200, result.raw);
  const review = decodeResponse(JSON.parse(result.body));
  assert.equal(review.uid, uid);
  assert.equal(review.allowed, true);
  checkInjectedPod(applyJsonPatch(POD, review.patch) as Record<string, unknown>);
}

async function admission(server: TestServer, uid: string) {
  return httpsPost(server, '/mutate', JSON.stringify(reviewFor(POD, { uid })));
}

function assertOverloaded(response: { status: number; headers: Readonly<Record<string, unknown>>; body: string }): void {
  assert.equal(response.status, 503, response.body);
  assert.equal(response.headers['retry-after'], '1');
  const body = JSON.parse(response.body) as { error: string; message: string };
  assert.equal(body.error, 'overloaded');
  assert.match(body.message, /server\.maxConcurrentAdmissions=3/);
  assert.doesNotMatch(response.body, STACK_TRACE);
}

test('beyond maxConcurrentAdmissions an admission gets 503 with Retry-After; answered ones give their slot back', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startServer({ ENVOY_INJECTOR_SERVER_MAX_CONCURRENT_ADMISSIONS: '3', ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '120000' });
  try {
    const held = [await hold(server, 'h1'), await hold(server, 'h2'), await hold(server, 'h3')];
    assertOverloaded(await admission(server, 'over-1'));
    assertOverloaded(await admission(server, 'over-2'));
    // Probes are outside the bound: a full webhook is alive and ready, just busy.
    assert.equal((await httpsGet(server, '/healthz')).status, 200);
    assert.equal((await httpsGet(server, '/readyz')).status, 200);

    // One answered: its slot is free again, exactly one.
    assertInjected(await held[0]!.finish(), 'h1');
    const next = await hold(server, 'h4');
    assertOverloaded(await admission(server, 'over-3'));

    for (const h of [held[1]!, held[2]!, next]) assertInjected(await h.finish(), h.uid);
    // All answered: the full bound is available.
    const again = await Promise.all([hold(server, 'h5'), hold(server, 'h6'), hold(server, 'h7')]);
    assertOverloaded(await admission(server, 'over-4'));
    for (const h of again) assertInjected(await h.finish(), h.uid);
    const served = await admission(server, 'after');
    assert.equal(served.status, 200);
    // Every refusal is counted, so an overload can be alerted on.
    const scrape = await httpsGet(server, '/metrics');
    assert.match(scrape.body, /^envoy_injector_request_errors_total\{status="503"\} 4$/m);
  } finally {
    await server.close();
  }
});

test('the slots of abandoned admissions come back', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startServer({ ENVOY_INJECTOR_SERVER_MAX_CONCURRENT_ADMISSIONS: '3', ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '120000' });
  try {
    const abandoned = [await hold(server, 'a1'), await hold(server, 'a2'), await hold(server, 'a3')];
    assertOverloaded(await admission(server, 'over'));
    // The clients go away without sending their bodies.
    for (const h of abandoned) {
      const closed = server.serverSideClosed(h.port);
      h.socket.destroy();
      await closed;
    }
    const held = await Promise.all([hold(server, 'b1'), hold(server, 'b2'), hold(server, 'b3')]);
    assertOverloaded(await admission(server, 'over-again'));
    for (const h of held) assertInjected(await h.finish(), h.uid);
  } finally {
    await server.close();
  }
});

test('the slot of an admission cut off by the request timeout comes back', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startServer({ ENVOY_INJECTOR_SERVER_MAX_CONCURRENT_ADMISSIONS: '1', ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '1000' });
  try {
    const slow = await hold(server, 'slow');
    const cut = await slow.result;
    assert.equal(cut.status, 408, cut.raw);
    await server.serverSideClosed(slow.port);
    // With the only slot still taken, this would be answered 503.
    const next = await hold(server, 'next');
    assertInjected(await next.finish(), 'next');
  } finally {
    await server.close();
  }
});
