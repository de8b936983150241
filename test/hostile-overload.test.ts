// The bounds that keep clients from holding what the API server's admissions need (SPEC.md §6,
// README "Limits and performance"), over real HTTPS:
// - per peer (server.maxRequestsPerPeer): requests in progress from one address; beyond it that
//   address gets 503 at once while other addresses are served; places come back when a request is
//   answered, abandoned or cut off;
// - admission slots (server.maxConcurrentAdmissions): taken only once a body is complete, so
//   requests whose bodies are still to come hold none;
// - the body deadline (server.bodyTimeoutMs): a body not complete in time gets 408;
// - probes are outside every bound.
// Deterministic: requests are held in progress with `Expect: 100-continue` (the server's
// `100 Continue` proves it took the request, and client and server share this event loop, so the
// place is taken before the client sees it); slots are held through the limit the test passes in.
// Several peers are several loopback addresses (127.0.1.x).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { createAdmissionLimit } from '../src/server/admission-limit.ts';
import { checkInjectedPod } from './support/check-injected.ts';
import { captureLogger } from './support/fake-apiserver-cluster.ts';
import { removeCertificates, startServer, type TestServer } from './support/https-server.ts';
import { applyJsonPatch } from './support/patch.ts';
import {
  firstData,
  httpsGet,
  httpsPost,
  openTls,
  peerAddress,
  readUntilClosed,
  requestHead,
  STACK_TRACE,
  type RawResult,
} from './support/raw-https.ts';
import { decodeResponse, reviewFor } from './support/review.ts';

/** A hung connection fails its test instead of the whole run. */
const TEST_TIMEOUT_MS = 60_000;
const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'nginx' }] },
};
/** Long enough that no request of a test here meets it unless the test waits for it. */
const PATIENT = { ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '120000', ENVOY_INJECTOR_SERVER_BODY_TIMEOUT_MS: '120000' };

after(removeCertificates);

/** An admission whose headers the server has taken (it said 100 Continue) and whose body is held back. */
interface Held {
  readonly uid: string;
  readonly socket: TLSSocket;
  /** The client's port, which names the connection on the server's side (gone once closed). */
  readonly port: number;
  readonly address: string;
  readonly result: Promise<RawResult>;
  /** Sends the body: the admission completes. */
  finish(): Promise<RawResult>;
}

async function hold(server: TestServer, uid: string, address = '127.0.0.1'): Promise<Held> {
  const body = JSON.stringify(reviewFor(POD, { uid }));
  const socket = await openTls(server, address);
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
    address,
    result,
    finish: () => {
      socket.write(body);
      return result;
    },
  };
}

function assertInjected(result: { status?: number; body: string; raw?: string }, uid: string): void {
  assert.equal(result.status, 200, result.raw ?? result.body);
  const review = decodeResponse(JSON.parse(result.body));
  assert.equal(review.uid, uid);
  assert.equal(review.allowed, true);
  checkInjectedPod(applyJsonPatch(POD, review.patch) as Record<string, unknown>);
}

async function admission(server: TestServer, uid: string, address?: string) {
  return httpsPost(server, '/mutate', JSON.stringify(reviewFor(POD, { uid })), { 'content-type': 'application/json' }, false, address);
}

function assertRefused(response: { status: number; headers: Readonly<Record<string, unknown>>; body: string }, error: string, message: RegExp): void {
  assert.equal(response.status, 503, response.body);
  assert.equal(response.headers['retry-after'], '1');
  const body = JSON.parse(response.body) as { error: string; message: string };
  assert.equal(body.error, error);
  assert.match(body.message, message);
  assert.doesNotMatch(response.body, STACK_TRACE);
}

const peerLimited = (response: Parameters<typeof assertRefused>[0]) =>
  assertRefused(response, 'too-many-requests-from-peer', /too many requests in progress from 127\.0\.0\.1 \(server\.maxRequestsPerPeer=3\)/);

test('beyond maxRequestsPerPeer one address gets 503 at once, others are served, answered ones give their place back', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startServer({ ...PATIENT, ENVOY_INJECTOR_SERVER_MAX_REQUESTS_PER_PEER: '3' });
  try {
    const held = [await hold(server, 'h1'), await hold(server, 'h2'), await hold(server, 'h3')];
    peerLimited(await admission(server, 'over-1'));
    peerLimited(await admission(server, 'over-2'));
    // Another address (the API server, while a pod floods) is served, up to its own bound.
    assertInjected(await admission(server, 'other', peerAddress(0)), 'other');
    const others = [await hold(server, 'o1', peerAddress(1)), await hold(server, 'o2', peerAddress(1))];
    assertInjected(await admission(server, 'other-2', peerAddress(1)), 'other-2');
    // Probes are outside the bound: a full webhook is alive and ready, just busy.
    assert.equal((await httpsGet(server, '/healthz')).status, 200);
    assert.equal((await httpsGet(server, '/readyz')).status, 200);
    assert.equal((await httpsGet(server, '/metrics')).status, 200);

    // One answered: its place is free again, exactly one.
    assertInjected(await held[0]!.finish(), 'h1');
    await server.serverSideClosed(held[0]!.port);
    const next = await hold(server, 'h4');
    peerLimited(await admission(server, 'over-3'));

    for (const h of [held[1]!, held[2]!, next, ...others]) assertInjected(await h.finish(), h.uid);
    const served = await admission(server, 'after');
    assert.equal(served.status, 200);
    // Every refusal is counted, by status and by reason.
    const scrape = (await httpsGet(server, '/metrics')).body;
    assert.match(scrape, /^envoy_injector_request_errors_total\{status="503"\} 3$/m);
    assert.match(scrape, /^envoy_injector_requests_refused_total\{reason="peer-limit"\} 3$/m);
    assert.match(scrape, /^envoy_injector_requests_refused_total\{reason="overloaded"\} 0$/m);
  } finally {
    await server.close();
  }
});

test('the places of abandoned requests and of bodies cut off by the body deadline come back', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startServer({ ENVOY_INJECTOR_SERVER_REQUEST_TIMEOUT_MS: '120000', ENVOY_INJECTOR_SERVER_BODY_TIMEOUT_MS: '500', ENVOY_INJECTOR_SERVER_MAX_REQUESTS_PER_PEER: '3' });
  try {
    // Abandoned: the clients go away without sending their bodies.
    const abandoned = [await hold(server, 'a1'), await hold(server, 'a2'), await hold(server, 'a3')];
    for (const h of abandoned) {
      const closed = server.serverSideClosed(h.port);
      h.socket.destroy();
      await closed;
    }
    // Cut off: each waits for the body deadline (no timing is assumed: the test waits for the 408).
    const slow = [await hold(server, 's1'), await hold(server, 's2'), await hold(server, 's3')];
    for (const h of slow) {
      const cut = await h.result;
      assert.equal(cut.status, 408, cut.raw);
      assert.equal(cut.headers['connection'], 'close');
      assert.deepEqual(JSON.parse(cut.body), {
        error: 'body-timeout',
        message: 'the request body did not arrive within 500 ms of its headers (server.bodyTimeoutMs)',
      });
      await server.serverSideClosed(h.port);
    }
    // With the places still taken, this would be answered 503: all three are free. (Its body goes
    // with its headers, as the API server sends it, so the short deadline cannot cut it.)
    assertInjected(await admission(server, 'b1'), 'b1');
    const scrape = (await httpsGet(server, '/metrics')).body;
    assert.match(scrape, /^envoy_injector_requests_refused_total\{reason="body-timeout"\} 3$/m);
    assert.match(scrape, /^envoy_injector_request_errors_total\{status="408"\} 3$/m);
  } finally {
    await server.close();
  }
});

test('admission slots are taken only once a body is complete: held bodies take none, and a full set of slots is 503', { timeout: TEST_TIMEOUT_MS }, async () => {
  const limit = createAdmissionLimit(2);
  const server = await startServer({ ...PATIENT, ENVOY_INJECTOR_SERVER_MAX_REQUESTS_PER_PEER: '100' }, undefined, { admissionLimit: limit });
  try {
    // Ten requests whose bodies are still to come: they hold no slot.
    const held = await Promise.all(Array.from({ length: 10 }, (_, i) => hold(server, `held-${i}`)));
    assert.equal(limit.inFlight, 0);
    assertInjected(await admission(server, 'served'), 'served');
    // Both slots taken (as two admissions being answered would): the next complete body gets 503.
    const taken = [limit.tryAcquire(), limit.tryAcquire()];
    const refused = await admission(server, 'refused');
    assertRefused(refused, 'overloaded', /too many admissions in progress \(server\.maxConcurrentAdmissions=2\)/);
    // A held body completing now is refused the same way; one slot back and it would be served.
    const late = await held[0]!.finish();
    assert.equal(late.status, 503, late.raw);
    taken[0]?.();
    for (const h of held.slice(1)) assertInjected(await h.finish(), h.uid);
    taken[1]?.();
    assert.equal(limit.inFlight, 0, 'every slot given back');
    const scrape = (await httpsGet(server, '/metrics')).body;
    assert.match(scrape, /^envoy_injector_requests_refused_total\{reason="overloaded"\} 2$/m);
  } finally {
    await server.close();
  }
});

test('60 slow senders, from one address or sixty, do not make ordinary admissions fail', { timeout: TEST_TIMEOUT_MS }, async () => {
  // Defaults (32 per peer, 32 slots, 5 s body deadline), as a cluster runs them.
  const server = await startServer();
  const sockets: TLSSocket[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    const body = JSON.stringify(reviewFor(POD));
    // Each announces a 3 MB body and sends a byte a second (the attack of issue 10).
    const slow = async (address: string) => {
      const socket = await openTls(server, address);
      sockets.push(socket);
      const result = readUntilClosed(socket);
      socket.write(requestHead('/mutate', { 'Content-Type': 'application/json', 'Content-Length': 3 * 1024 * 1024 }) + body.slice(0, 10));
      timers.push(setInterval(() => !socket.destroyed && socket.write('x'), 1_000));
      return result;
    };
    const fromOne = await Promise.all(Array.from({ length: 60 }, () => slow(peerAddress(0))));
    const fromSixty = await Promise.all(Array.from({ length: 60 }, (_, i) => slow(peerAddress(1 + i))));
    // Meanwhile the API server (127.0.0.1) sends 100 admissions, 10 at a time: every one is served.
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => admission(server, `ordinary-${round}-${i}`)));
      answers.forEach((a, i) => assertInjected(a, `ordinary-${round}-${i}`));
    }
    assert.equal((await httpsGet(server, '/healthz')).status, 200);
    // Each slow sender ends with one of two correct answers, whichever it met first: 503 at once
    // (beyond 32 in progress from its address) or 408 at the body deadline. Which ones get which
    // depends only on their order of arrival, so both are accepted; none is served or left hanging.
    const outcomes = await Promise.all([...fromOne, ...fromSixty]);
    const statuses = outcomes.map((o) => o.status);
    assert.ok(statuses.every((s) => s === 408 || s === 503), JSON.stringify(statuses));
    // From one address at most 32 could be in progress at once, so at least 28 were refused at once.
    assert.ok(statuses.slice(0, 60).filter((s) => s === 503).length >= 28, JSON.stringify(statuses.slice(0, 60)));
    // Sixty addresses with one request each meet no per-peer bound: all reach the body deadline.
    assert.deepEqual(statuses.slice(60), Array(60).fill(408));
  } finally {
    for (const timer of timers) clearInterval(timer);
    for (const socket of sockets) socket.destroy();
    await server.close();
  }
});

test('refusals are logged at most once a second, with the counts since the last line', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { logger, lines } = captureLogger('info');
  const server = await startServer({ ...PATIENT, ENVOY_INJECTOR_SERVER_MAX_REQUESTS_PER_PEER: '1' }, logger);
  try {
    const held = await hold(server, 'held');
    const started = Date.now();
    for (let i = 0; i < 30; i++) assert.equal((await admission(server, `refused-${i}`)).status, 503);
    const elapsedMs = Date.now() - started;
    assertInjected(await held.finish(), 'held');
    const refusals = lines.filter((l) => l['msg'] === 'requests refused');
    // The first refusal is logged at once; after it, one line per second at most, however fast
    // the refusals come (the bound is computed from the time this loop actually took).
    assert.ok(refusals.length >= 1);
    assert.ok(refusals.length <= 1 + Math.floor(elapsedMs / 1000), `${refusals.length} lines in ${elapsedMs} ms`);
    assert.deepEqual(refusals[0]?.['refused'], { 'peer-limit': 1 });
    assert.equal(refusals[0]?.['peer'], '127.0.0.1');
    assert.equal(refusals[0]?.['level'], 40);
    const logged = refusals.reduce((sum, l) => sum + (l['refused']['peer-limit'] as number), 0);
    assert.ok(logged <= 30);
    assert.match((await httpsGet(server, '/metrics')).body, /^envoy_injector_requests_refused_total\{reason="peer-limit"\} 30$/m);
  } finally {
    await server.close();
  }
});
