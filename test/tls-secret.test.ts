// tls.mode secret against the fake API server (real HTTPS, client-node through a real KubeConfig):
// replicas started together converge on one Secret and one caBundle, an edit made concurrently to the
// webhook configuration survives, a replaced Secret or caBundle converges, renewal keeps serving, and
// /readyz says 503 until the caBundle trusts the served certificate.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { X509Certificate } from 'node:crypto';
import { Agent } from 'node:https';
import { after, before, test } from 'node:test';
import { createKubeResources } from '../src/kube/resources.ts';
import { startInjector, type RunningInjector } from '../src/serve.ts';
import { certificateCovers, generateCa, generateServingCert, splitPemCertificates } from '../src/tls/certificates.ts';
import { planSecretBundle, readSecretBundle } from '../src/tls/secret-bundle.ts';
import { SecretTlsSource } from '../src/tls/secret-source.ts';
import { testRuntime } from './support/config.ts';
import { startFakeApiServer, type FakeApiServer, type KubeObject } from './support/fake-apiserver.ts';
import {
  captureLogger,
  eventually,
  httpsRequest,
  manifestWebhookConfiguration,
  NAMESPACE,
  secretModeConfig,
  SERVICE_HOST,
} from './support/fake-apiserver-cluster.ts';

const SECRET = 'envoy-injector-tls';
const WEBHOOK = 'envoy-injector';
const DAY_MS = 24 * 60 * 60 * 1000;

let fake: FakeApiServer;
before(async () => {
  fake = await startFakeApiServer();
});
after(async () => {
  await fake.close();
});

/** Resets the fake cluster to a fresh install: the webhook configuration of manifests/, no Secret. */
function freshInstall(extra: (mwc: KubeObject) => void = () => {}): void {
  fake.remove('secrets', NAMESPACE, SECRET);
  fake.remove('mutatingwebhookconfigurations', undefined, WEBHOOK);
  const mwc = manifestWebhookConfiguration();
  extra(mwc);
  fake.put('mutatingwebhookconfigurations', mwc);
  fake.requests.length = 0;
  fake.hook = undefined;
}

const port = (instance: RunningInjector) => (instance.app.server.address() as { port: number }).port;
const secretData = (key: string) => Buffer.from(fake.get('secrets', NAMESPACE, SECRET)?.['data'][key] as string, 'base64').toString('utf8');
const caBundles = () =>
  (fake.get('mutatingwebhookconfigurations', undefined, WEBHOOK)?.['webhooks'] as KubeObject[]).map((w) =>
    Buffer.from(w['clientConfig'].caBundle ?? '', 'base64').toString('utf8'),
  );

async function start(count: number, options: { now?: () => Date; env?: Record<string, string> } = {}) {
  const config = secretModeConfig(options.env);
  return Promise.all(
    Array.from({ length: count }, () =>
      startInjector(config, {
        logger: captureLogger('silent').logger,
        runtime: testRuntime,
        // Each replica has its own client, as separate pods would.
        kubeConfig: fake.kubeConfig(),
        ...(options.now === undefined ? {} : { now: options.now }),
      }),
    ),
  );
}

test('three replicas started at once converge on one Secret and one caBundle, and never fight', async () => {
  freshInstall((mwc) => {
    // A field this client does not model (as a newer API server's would be) must survive the replace.
    mwc['webhooks'][0].futureField = { keep: true };
  });
  // Hold the replicas' first reads until all three have asked, so that all three find no Secret and
  // race to create it (without this, a slow starter might simply find the winner's).
  let release: () => void = () => {};
  const allAsked = new Promise<void>((resolve) => (release = resolve));
  let reads = 0;
  fake.hook = async (request) => {
    if (request.resource === 'secrets' && request.method === 'GET' && reads < 3) {
      if (++reads === 3) release();
      await allAsked;
    }
  };
  const replicas = await start(3);
  try {
    // One create won; the two others got 409 AlreadyExists and adopted the winner's Secret.
    const creates = fake.writes('secrets').filter((r) => r.method === 'POST');
    assert.deepEqual(creates.map((r) => r.status).sort(), [201, 409, 409]);
    assert.equal(fake.writes('secrets').filter((r) => r.method === 'PUT').length, 0);
    const served = replicas.map((r) => r.tls.current()?.cert);
    assert.equal(new Set(served).size, 1, 'all replicas serve the same certificate');
    assert.equal(served[0], secretData('tls.crt'));

    // The certificate names the Service, and every webhook trusts exactly the Secret's CA.
    const cert = new X509Certificate(secretData('tls.crt'));
    for (const name of ['envoy-injector', `envoy-injector.${NAMESPACE}`, SERVICE_HOST, `${SERVICE_HOST}.cluster.local`]) {
      assert.ok(certificateCovers(cert, name), name);
    }
    assert.deepEqual(caBundles(), [secretData('ca.crt'), secretData('ca.crt')]);
    assert.equal(splitPemCertificates(secretData('ca.crt')).length, 1);
    assert.equal(fake.writes('mutatingwebhookconfigurations', { succeeded: true }).length, 1, 'the caBundle was written once');
    assert.deepEqual(fake.get('mutatingwebhookconfigurations', undefined, WEBHOOK)?.['webhooks'][0].futureField, { keep: true });

    // The API server, trusting the caBundle, reaches every replica by the Service name; all are ready.
    for (const replica of replicas) {
      const ready = await httpsRequest(port(replica), '/readyz', { ca: caBundles()[0] as string });
      assert.equal(ready.status, 200, ready.body);
    }

    // Further passes write nothing: nothing differs.
    const before = fake.writes('secrets').length + fake.writes('mutatingwebhookconfigurations').length;
    await Promise.all(replicas.map((r) => r.tls.resync()));
    await Promise.all(replicas.map((r) => r.tls.resync()));
    assert.equal(fake.writes('secrets').length + fake.writes('mutatingwebhookconfigurations').length, before);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
  }
});

test('an edit made to the webhook configuration between our read and our replace is not lost', async () => {
  freshInstall();
  let edited = false;
  fake.hook = (request) => {
    if (request.method === 'PUT' && request.resource === 'mutatingwebhookconfigurations' && !edited) {
      // Someone else (an admin, a GitOps tool) writes first: the resourceVersion we read is now stale.
      edited = true;
      const current = fake.get('mutatingwebhookconfigurations', undefined, WEBHOOK) as KubeObject;
      current['webhooks'][1].timeoutSeconds = 7;
      current['metadata'].labels = { ...current['metadata'].labels, team: 'platform' };
      fake.put('mutatingwebhookconfigurations', current);
    }
  };
  const [replica] = await start(1);
  try {
    const puts = fake.writes('mutatingwebhookconfigurations');
    assert.deepEqual(puts.map((r) => r.status), [409, 200], 'the stale replace was refused, then redone on a fresh read');
    const mwc = fake.get('mutatingwebhookconfigurations', undefined, WEBHOOK) as KubeObject;
    assert.equal(mwc['webhooks'][1].timeoutSeconds, 7, 'the concurrent edit survived');
    assert.equal(mwc['metadata'].labels.team, 'platform');
    assert.deepEqual(caBundles(), [secretData('ca.crt'), secretData('ca.crt')]);
    assert.deepEqual(replica?.tls.readiness(), { ready: true });
  } finally {
    await replica?.close();
  }
});

test('a deleted Secret and an edited caBundle converge on the next pass', async () => {
  freshInstall();
  const replicas = await start(2);
  try {
    const firstCa = secretData('ca.crt');
    // An admin deletes the Secret (e.g. to rotate a CA they think leaked).
    fake.remove('secrets', NAMESPACE, SECRET);
    await Promise.all(replicas.map((r) => r.tls.resync()));
    const secondCa = secretData('ca.crt');
    assert.notEqual(secondCa, firstCa, 'a new CA');
    assert.deepEqual(caBundles(), [secondCa, secondCa]);
    for (const replica of replicas) {
      assert.equal(replica.tls.current()?.cert, secretData('tls.crt'));
      const ready = await httpsRequest(port(replica), '/readyz', { ca: secondCa });
      assert.equal(ready.status, 200);
    }

    // Someone overwrites one webhook's caBundle: it is restored, and the other left as is.
    const mwc = fake.get('mutatingwebhookconfigurations', undefined, WEBHOOK) as KubeObject;
    mwc['webhooks'][1].clientConfig.caBundle = Buffer.from(firstCa).toString('base64');
    fake.put('mutatingwebhookconfigurations', mwc);
    await replicas[0]?.tls.resync();
    assert.deepEqual(caBundles(), [secondCa, secondCa]);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
  }
});

test('renewal of the serving certificate keeps serving: no failed request, same CA, new connections get the new certificate', async (t) => {
  freshInstall();
  // The replicas start "340 days ago": their certificate (valid 365 days) is due for renewal today.
  let offsetMs = -340 * DAY_MS;
  const now = () => new Date(Date.now() + offsetMs);
  const replicas = await start(2, { now });
  const [a, b] = replicas as [RunningInjector, RunningInjector];
  try {
    const ca = secretData('ca.crt');
    const oldFingerprint = a.tls.current()?.fingerprint;
    const webhookWrites = fake.writes('mutatingwebhookconfigurations').length;
    const keepAlive = new Agent({ keepAlive: true, maxSockets: 2 });
    const failures: string[] = [];
    const seen = new Set<string>();
    let requests = 0;
    let switched = false;
    let reusedAcrossSwitch = 0;
    let stop = false;
    const load = async (agent: Agent | undefined) => {
      while (!stop) {
        try {
          const result = await httpsRequest(port(a), '/healthz', { ca, ...(agent === undefined ? {} : { agent }) });
          requests++;
          if (!result.reused) seen.add(result.fingerprint);
          else if (switched && result.fingerprint === oldFingerprint) reusedAcrossSwitch++;
          if (result.status !== 200) failures.push(`status ${result.status}`);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    };
    // Kept-alive connections and a new connection per request, side by side.
    const loops = [load(keepAlive), load(keepAlive), load(undefined), load(undefined)];
    await eventually('load running', () => requests > 20);

    offsetMs = 0; // today: the certificate expires within renewBeforeDays
    await a.tls.resync();
    switched = true;
    const renewed = a.tls.current()?.fingerprint;
    assert.notEqual(renewed, oldFingerprint, 'renewed');
    const atSwitch = requests;
    await eventually('requests after the switch', () => requests > atSwitch + 20);
    stop = true;
    await Promise.all(loops);
    keepAlive.destroy();

    assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed`);
    t.diagnostic(`${requests} requests over TLS during the renewal (${reusedAcrossSwitch} on connections opened before it), ${failures.length} failed`);
    assert.ok(seen.has(renewed as string), 'new connections got the renewed certificate');
    assert.ok(reusedAcrossSwitch > 0, 'connections open before the switch kept serving on the certificate they started with');
    const fresh = await httpsRequest(port(a), '/readyz', { ca });
    assert.equal(fresh.fingerprint, renewed);
    assert.equal(fresh.status, 200);

    // The Secret was renewed in place (one conditional replace), under the same CA: the caBundle
    // did not change, so it was not written.
    assert.equal(secretData('ca.crt'), ca);
    assert.equal(fake.writes('secrets', { succeeded: true }).filter((r) => r.method === 'PUT').length, 1);
    assert.equal(fake.writes('mutatingwebhookconfigurations').length, webhookWrites);
    assert.ok(new Date(new X509Certificate(secretData('tls.crt')).validTo).getTime() > Date.now() + 300 * DAY_MS);

    // The other replica adopts the renewed certificate without writing anything.
    await b.tls.resync();
    assert.equal(b.tls.current()?.fingerprint, renewed);
    assert.equal(fake.writes('secrets', { succeeded: true }).filter((r) => r.method === 'PUT').length, 1);
    assert.equal((await httpsRequest(port(b), '/readyz', { ca })).fingerprint, renewed);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
  }
});

test('/readyz is 503 until the webhook configuration exists and its caBundle trusts the certificate', async () => {
  freshInstall();
  fake.remove('mutatingwebhookconfigurations', undefined, WEBHOOK);
  const [replica] = (await start(1)) as [RunningInjector];
  try {
    const ca = secretData('ca.crt');
    const notReady = await httpsRequest(port(replica), '/readyz', { ca });
    assert.equal(notReady.status, 503);
    assert.match(JSON.parse(notReady.body).reason, /MutatingWebhookConfiguration envoy-injector not found/);
    assert.equal((await httpsRequest(port(replica), '/healthz', { ca })).status, 200, 'alive meanwhile');

    fake.put('mutatingwebhookconfigurations', manifestWebhookConfiguration());
    await replica.tls.resync();
    assert.equal((await httpsRequest(port(replica), '/readyz', { ca })).status, 200);
  } finally {
    await replica.close();
  }
});

test('an API server that refuses (RBAC) leaves the replica alive, not ready, and saying why', async () => {
  freshInstall();
  fake.hook = (request) =>
    request.resource === 'secrets'
      ? {
          status: 403,
          reason: 'Forbidden',
          message: `secrets "${SECRET}" is forbidden: User "system:serviceaccount:${NAMESPACE}:envoy-injector" cannot get resource "secrets" in API group "" in the namespace "${NAMESPACE}"`,
        }
      : undefined;
  const [replica] = (await start(1)) as [RunningInjector];
  try {
    assert.equal(replica.tls.current(), undefined);
    const readiness = replica.tls.readiness();
    assert.equal(readiness.ready, false);
    assert.match(readiness.reason ?? '', /waiting for the certificate in Secret envoy-injector\/envoy-injector-tls: reading Secret .*cannot get resource "secrets".*\(HTTP 403\)/);
    // The placeholder certificate serves /healthz; nothing trusts it, and /readyz says why.
    const response = await new Promise<number>((resolve, reject) => {
      import('node:https').then(({ get }) =>
        get({ host: '127.0.0.1', port: port(replica), path: '/readyz', rejectUnauthorized: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject),
      );
    });
    assert.equal(response, 503);

    // Once RBAC is fixed, the next pass succeeds.
    fake.hook = undefined;
    await replica.tls.resync();
    assert.deepEqual(replica.tls.readiness(), { ready: true });
    assert.equal((await httpsRequest(port(replica), '/readyz', { ca: secretData('ca.crt') })).status, 200);
  } finally {
    await replica.close();
  }
});

test('a CA due to expire is rotated with the old CA kept in the trust bundle while it is valid', async () => {
  const now = new Date();
  // A CA made 3630 days ago expires in 20 days: within renewBeforeDays (30).
  const oldCa = await generateCa(new Date(now.getTime() - 3630 * DAY_MS));
  const oldServing = await generateServingCert(oldCa, [SERVICE_HOST], new Date(now.getTime() - 100 * DAY_MS));
  const existing = { caCert: oldCa.cert, caKey: oldCa.key, cert: oldServing.cert, key: oldServing.key, trustBundle: oldCa.cert };
  const plan = await planSecretBundle(existing, [SERVICE_HOST], now, 30);
  assert.equal(plan.action, 'rotate-ca');
  assert.notEqual(plan.bundle.caCert, oldCa.cert);
  const trusted = splitPemCertificates(plan.bundle.trustBundle);
  assert.deepEqual(trusted, [...splitPemCertificates(plan.bundle.caCert), ...splitPemCertificates(oldCa.cert)], 'new CA first, old CA kept');

  // Written to a Secret and read back, the active CA is the one ca.key belongs to.
  const resources = createKubeResources(fake.kubeConfig());
  fake.remove('secrets', NAMESPACE, SECRET);
  const { secretWithBundle } = await import('../src/tls/secret-bundle.ts');
  await resources.createSecret(NAMESPACE, secretWithBundle(undefined, { namespace: NAMESPACE, name: SECRET }, plan.bundle));
  const read = readSecretBundle((await resources.getSecret(NAMESPACE, SECRET)) as KubeObject);
  assert.ok(!('problem' in read));
  assert.equal(read.caCert, splitPemCertificates(plan.bundle.caCert)[0]);
  assert.equal(read.trustBundle, plan.bundle.trustBundle);
  // Nothing more to do with it.
  assert.equal((await planSecretBundle(read, [SERVICE_HOST], now, 30)).action, 'reuse');
  // Once the old CA has expired, the next renewal drops it.
  const later = new Date(now.getTime() + 340 * DAY_MS);
  const renewal = await planSecretBundle(read, [SERVICE_HOST], later, 30);
  assert.equal(renewal.action, 'renew');
  assert.deepEqual(splitPemCertificates(renewal.bundle.trustBundle), splitPemCertificates(plan.bundle.caCert));
});

test('a Secret someone else left unusable is repaired in place, keeping its other keys and labels', async () => {
  freshInstall();
  fake.put('secrets', {
    metadata: { name: SECRET, namespace: NAMESPACE, labels: { owner: 'admin' } },
    type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from('not a certificate').toString('base64'), 'tls.key': '', note: Buffer.from('keep').toString('base64') },
  });
  const [replica] = (await start(1)) as [RunningInjector];
  try {
    const secret = fake.get('secrets', NAMESPACE, SECRET) as KubeObject;
    assert.equal(secret['metadata'].labels.owner, 'admin');
    assert.equal(Buffer.from(secret['data'].note, 'base64').toString(), 'keep');
    assert.ok(!('problem' in readSecretBundle(secret)));
    assert.equal(replica.tls.current()?.cert, secretData('tls.crt'));
    assert.deepEqual(replica.tls.readiness(), { ready: true });
  } finally {
    await replica.close();
  }
});

test('a CA reset by one replica never leaves another ready but untrusted; the old CA is dropped after the grace', async () => {
  freshInstall();
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  const replicas = await start(2, { now });
  const [a, b] = replicas as [RunningInjector, RunningInjector];
  // Timers off: the test runs every pass itself, so b runs none until it is told to.
  for (const replica of replicas) replica.tls.stop();
  /**
   * What the API server sees: with each webhook's caBundle as it is now, every replica that says it
   * is ready completes a TLS handshake (and /readyz answers 200). Returns how many were ready.
   */
  const apiServerView = async (phase: string): Promise<number> => {
    let ready = 0;
    for (const [name, replica] of [['a', a], ['b', b]] as const) {
      if (!replica.tls.readiness().ready) continue;
      ready++;
      for (const ca of new Set(caBundles())) {
        const result = await httpsRequest(port(replica), '/readyz', { ca }).catch((error: Error) => ({ status: 0, body: error.message }));
        assert.equal(result.status, 200, `${phase}: replica ${name} is ready, but a client trusting the caBundle gets: ${result.body}`);
      }
    }
    return ready;
  };
  try {
    assert.equal(await apiServerView('installed'), 2);
    const firstCa = secretData('ca.crt');
    const oldFingerprint = b.tls.current()?.fingerprint;

    // An admin deletes the Secret to start over with a new CA; only replica a runs its pass.
    fake.remove('secrets', NAMESPACE, SECRET);
    await a.tls.resync();
    assert.equal(b.tls.current()?.fingerprint, oldFingerprint, 'b still serves the certificate of the old CA');
    assert.equal(await apiServerView('a reset the CA, b has not run its pass'), 2, 'b stays trusted, so it stays ready');
    const [newCa, ...carried] = splitPemCertificates(secretData('ca.crt'));
    assert.notEqual(newCa, firstCa, 'a new CA');
    assert.deepEqual(carried, [firstCa], 'the CA the caBundle trusted is carried into the new trust bundle');
    assert.deepEqual(caBundles(), [secretData('ca.crt'), secretData('ca.crt')]);

    // b's pass adopts the new certificate; the caBundle it reconciles is the same one.
    const writes = fake.writes('mutatingwebhookconfigurations', { succeeded: true }).length;
    await b.tls.resync();
    assert.equal(b.tls.current()?.cert, secretData('tls.crt'));
    assert.equal(fake.writes('mutatingwebhookconfigurations', { succeeded: true }).length, writes, 'the replicas agree on the caBundle');
    assert.equal(await apiServerView('both on the new CA'), 2);

    // Before the grace ends nothing changes; after it, the old CA (a leaked one, say) is dropped.
    await a.tls.resync();
    assert.equal(splitPemCertificates(caBundles()[0] as string).length, 2);
    offsetMs = 24 * 60 * 60 * 1000;
    await a.tls.resync();
    assert.deepEqual(splitPemCertificates(secretData('ca.crt')), [newCa]);
    assert.deepEqual(caBundles(), [newCa, newCa]);
    await b.tls.resync();
    assert.equal(await apiServerView('after the grace'), 2);
    assert.equal(fake.get('secrets', NAMESPACE, SECRET)?.['metadata'].annotations?.['envoy-injector.io/carried-cas-until'], undefined);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
  }
});

test('a replica left on a dropped CA is not ready as soon as it reads the caBundle, even when its Secret read fails', async () => {
  freshInstall();
  let offsetMs = 0;
  const now = () => new Date(Date.now() + offsetMs);
  const replicas = await start(2, { now });
  const [a, b] = replicas as [RunningInjector, RunningInjector];
  for (const replica of replicas) replica.tls.stop();
  try {
    const oldFingerprint = b.tls.current()?.fingerprint;
    fake.remove('secrets', NAMESPACE, SECRET);
    await a.tls.resync();
    // b never manages a pass during the whole grace (say its Secret reads fail); then a drops the old CA.
    offsetMs = 24 * 60 * 60 * 1000;
    await a.tls.resync();
    const newCa = secretData('ca.crt');
    assert.equal(splitPemCertificates(newCa).length, 1);
    assert.deepEqual(caBundles(), [newCa, newCa]);

    fake.hook = (request) =>
      request.resource === 'secrets' ? { status: 503, reason: 'ServiceUnavailable', message: 'etcdserver: request timed out' } : undefined;
    await b.tls.resync();
    assert.equal(b.tls.current()?.fingerprint, oldFingerprint, 'b could not read the new certificate');
    const readiness = b.tls.readiness();
    assert.equal(readiness.ready, false, 'the caBundle b read no longer trusts what it serves');
    assert.match(readiness.reason ?? '', /does not trust the serving certificate/);

    // Once it can read the Secret, it switches and is ready again.
    fake.hook = undefined;
    await b.tls.resync();
    assert.deepEqual(b.tls.readiness(), { ready: true });
    assert.equal((await httpsRequest(port(b), '/readyz', { ca: newCa })).status, 200);
  } finally {
    await Promise.all(replicas.map((r) => r.close()));
  }
});

test('between passes the caBundle is read alone: a replica is not ready while it does not trust it, and restores it on its own', async () => {
  freshInstall();
  const { logger, lines } = captureLogger('info');
  // resync of an hour: only the trust checks (every 100 ms here) can notice anything in this test.
  const source = new SecretTlsSource(
    {
      namespace: NAMESPACE,
      secretName: SECRET,
      webhookConfigName: WEBHOOK,
      dnsNames: [SERVICE_HOST],
      renewBeforeDays: 30,
      resyncMs: 60 * 60 * 1000,
      trustCheckMs: 100,
    },
    createKubeResources(fake.kubeConfig()),
    logger,
    () => new Date(),
  );
  try {
    await source.start();
    assert.deepEqual(source.readiness(), { ready: true });
    const ca = secretData('ca.crt');

    // Someone (a GitOps tool, say) overwrites both caBundles with another CA, and for now the
    // replica cannot write the configuration back.
    fake.hook = (request) =>
      request.resource === 'mutatingwebhookconfigurations' && request.method === 'PUT'
        ? { status: 403, reason: 'Forbidden', message: 'mutatingwebhookconfigurations.admissionregistration.k8s.io "envoy-injector" is forbidden' }
        : undefined;
    const other = await generateCa();
    const mwc = fake.get('mutatingwebhookconfigurations', undefined, WEBHOOK) as KubeObject;
    for (const webhook of mwc['webhooks']) webhook.clientConfig.caBundle = Buffer.from(other.cert).toString('base64');
    fake.put('mutatingwebhookconfigurations', mwc);
    await eventually('the replica reports not ready', () => !source.readiness().ready);
    assert.match(source.readiness().reason ?? '', /does not trust the serving certificate/);

    // Once it may write again, a trust check runs a pass that restores the caBundle: ready again.
    fake.hook = undefined;
    await eventually('the caBundle restored', () => caBundles().every((bundle) => bundle === ca));
    await eventually('ready again', () => source.readiness().ready);
    assert.ok(lines.some((line) => line.msg === 'caBundle changed since the last pass; running a pass now'));
    assert.ok(lines.some((line) => line.msg === 'caBundle updated'));
  } finally {
    source.stop();
  }
});

test('carried CAs: the annotation is written and read back, a renewal keeps them, and a deadline that does not parse drops them', async () => {
  const now = new Date();
  const oldCa = await generateCa(now);
  const plan = await planSecretBundle(undefined, [SERVICE_HOST], now, 30, { trustedNow: async () => oldCa.cert, graceMs: 5 * 60 * 1000 });
  assert.equal(plan.action, 'generate');
  assert.equal(plan.bundle.carriedUntil?.getTime(), now.getTime() + 5 * 60 * 1000);
  assert.deepEqual(splitPemCertificates(plan.bundle.trustBundle).slice(1), splitPemCertificates(oldCa.cert));

  const { secretWithBundle } = await import('../src/tls/secret-bundle.ts');
  const secret = secretWithBundle(undefined, { namespace: NAMESPACE, name: SECRET }, plan.bundle) as KubeObject;
  assert.equal(secret['metadata'].annotations['envoy-injector.io/carried-cas-until'], plan.bundle.carriedUntil?.toISOString());
  const read = readSecretBundle(secret);
  assert.ok(!('problem' in read));
  assert.equal(read.carriedUntil?.getTime(), plan.bundle.carriedUntil?.getTime());
  assert.equal((await planSecretBundle(read, [SERVICE_HOST], now, 30)).action, 'reuse');

  // A renewal (here: a new name) during the grace keeps the carried CAs and their deadline.
  const renewed = await planSecretBundle(read, [SERVICE_HOST, 'extra.example'], now, 30);
  assert.equal(renewed.action, 'renew');
  assert.equal(renewed.bundle.trustBundle, read.trustBundle);
  assert.equal(renewed.bundle.carriedUntil?.getTime(), read.carriedUntil?.getTime());

  // Someone mangled the deadline: treated as passed, the carried CAs go, and so does the annotation.
  secret['metadata'].annotations['envoy-injector.io/carried-cas-until'] = 'soon';
  secret['metadata'].annotations['team'] = 'platform';
  const mangled = readSecretBundle(secret);
  assert.ok(!('problem' in mangled));
  const dropped = await planSecretBundle(mangled, [SERVICE_HOST], now, 30);
  assert.equal(dropped.action, 'drop-carried');
  assert.deepEqual(splitPemCertificates(dropped.bundle.trustBundle), splitPemCertificates(plan.bundle.caCert));
  const written = secretWithBundle(secret, { namespace: NAMESPACE, name: SECRET }, dropped.bundle) as KubeObject;
  assert.deepEqual(written['metadata'].annotations, { team: 'platform' });
});

test('a pass that wrote is followed by one soon after, which undoes a racing replica\'s stale write', async () => {
  freshInstall();
  // resync of an hour and no trust checks: only the pass after the write can notice anything here.
  const source = new SecretTlsSource(
    {
      namespace: NAMESPACE,
      secretName: SECRET,
      webhookConfigName: WEBHOOK,
      dnsNames: [SERVICE_HOST],
      renewBeforeDays: 30,
      resyncMs: 60 * 60 * 1000,
      trustCheckMs: 60 * 60 * 1000,
    },
    createKubeResources(fake.kubeConfig()),
    captureLogger('silent').logger,
    () => new Date(),
  );
  try {
    await source.start();
    const ca = secretData('ca.crt');
    assert.deepEqual(caBundles(), [ca, ca]);
    // A replica that read an older Secret writes its caBundle just after ours.
    const stale = await generateCa();
    const mwc = fake.get('mutatingwebhookconfigurations', undefined, WEBHOOK) as KubeObject;
    for (const webhook of mwc['webhooks']) webhook.clientConfig.caBundle = Buffer.from(stale.cert).toString('base64');
    fake.put('mutatingwebhookconfigurations', mwc);
    await eventually('the caBundle restored by the follow-up pass', () => caBundles().every((bundle) => bundle === ca));
    assert.deepEqual(source.readiness(), { ready: true });
  } finally {
    source.stop();
  }
});
