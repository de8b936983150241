// The webhook-guard component (manifests/components/webhook-guard) against a real kube-apiserver
// (KUBEBUILDER_ASSETS): the ValidatingAdmissionPolicy lets the injector's own ServiceAccount change
// only webhooks[*].clientConfig.caBundle of its MutatingWebhookConfiguration. With manifests/ and
// both components applied (server dry run first, then for real), the ServiceAccount — through a
// TokenRequest token and the RBAC of manifests/ — may rotate the caBundles (what tls.mode secret
// does), and is refused: widened rules, a repointed clientConfig (URL or Service), failurePolicy
// Ignore, a dropped namespaceSelector, a webhook added, removed or reordered, a label changed. An
// admin is not bound by the policy. ValidatingAdmissionPolicy v1 is GA in Kubernetes 1.30 and
// absent before (1.26 has only v1alpha1 behind a feature gate), so the suite needs 1.30.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { describeApiServers, waitFor } from './support/envtest.ts';

type Obj = Record<string, any>;

const MANIFESTS = new URL('../manifests/', import.meta.url).pathname;
const COMPONENTS = join(MANIFESTS, 'components');
const NS = 'envoy-injector';
const MWC = 'envoy-injector';
const MWC_PATH = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${MWC}`;
const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const POLICY_MESSAGE = /the envoy-injector service account may/;

describeApiServers(
  'webhook-guard: the injector may change only the caBundle of its webhook configuration, on a real API server',
  { minMinor: 30, minMinorReason: 'ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) is GA from Kubernetes 1.30; older API servers do not serve it' },
  (api) => {
    let dir = '';
    let overlay = '';
    let rendered: Obj[] = [];
    let token = '';

    const byKind = (...kinds: string[]) => rendered.filter((o) => kinds.includes(o['kind']));
    const apply = async (objects: Obj[]) => {
      const result = await api().kubectl(['apply', '-f', '-'], { input: objects.map((o) => stringifyYaml(o)).join('---\n') });
      assert.equal(result.code, 0, `kubectl apply: ${result.stderr}`);
    };
    const current = async (): Promise<Obj> => api().ok('GET', MWC_PATH);
    /** Replaces the webhook configuration as the injector's ServiceAccount (dry run: nothing stored). */
    const updateAsInjector = async (change: (mwc: Obj) => void, dryRun = false) => {
      const mwc = structuredClone(await current());
      change(mwc);
      return api().request('PUT', dryRun ? `${MWC_PATH}?dryRun=All` : MWC_PATH, mwc, { token });
    };
    const caBundleOf = (text: string) => Buffer.from(text).toString('base64');
    const widen = (mwc: Obj) => {
      mwc['webhooks'][0].rules = [{ operations: ['*'], apiGroups: ['*'], apiVersions: ['*'], resources: ['*/*'], scope: '*' }];
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'envtest-webhook-guard-'));
      overlay = join(dir, 'overlay');
      // An overlay as a cluster admin writes one (README "Optional hardening components").
      const kustomization = [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'resources:',
        // kustomize takes bases and components by relative path only.
        `  - ${relative(overlay, MANIFESTS)}`,
        'components:',
        `  - ${relative(overlay, join(COMPONENTS, 'webhook-guard'))}`,
        `  - ${relative(overlay, join(COMPONENTS, 'network-policy'))}`,
        '',
      ].join('\n');
      mkdirSync(overlay);
      writeFileSync(join(overlay, 'kustomization.yaml'), kustomization);
      const kustomize = await api().kubectl(['kustomize', overlay]);
      assert.equal(kustomize.code, 0, `kubectl kustomize (needs kustomize >= 3.7 for components): ${kustomize.stderr}`);
      rendered = parseAllDocuments(kustomize.stdout).map((d) => d.toJS() as Obj);
    });

    after(() => {
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    });

    test('kubectl apply --dry-run=server -k of manifests/ with both components is accepted, nothing stored', async () => {
      // A dry run creates nothing, so the namespace the namespaced objects name must exist first.
      await apply(byKind('Namespace'));
      const result = await api().kubectl(['apply', '--dry-run=server', '-k', overlay]);
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout.trim().split('\n');
      assert.equal(lines.length, rendered.length, result.stdout);
      for (const line of lines) assert.match(line, /(created|configured|unchanged) \(server dry run\)$/);
      assert.match(result.stdout, /validatingadmissionpolicy\.admissionregistration\.k8s\.io\/envoy-injector-webhook-guard created \(server dry run\)/);
      assert.match(result.stdout, /networkpolicy\.networking\.k8s\.io\/envoy-injector created \(server dry run\)/);
      const stored = await api().request('GET', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/envoy-injector-webhook-guard');
      assert.equal(stored.status, 404, 'a dry run stores nothing');
    });

    test('applied for real: RBAC alone lets the ServiceAccount widen the rules; then the guard, type-checked, takes effect', async () => {
      await apply(byKind('ServiceAccount', 'Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'));
      const issued = await api().ok('POST', `/api/v1/namespaces/${NS}/serviceaccounts/envoy-injector/token`, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { audiences: [ISSUER], expirationSeconds: 3600 },
      });
      token = issued.status.token;
      assert.equal(typeof token, 'string');
      // Why the component exists: RBAC's `update` by name lets the ServiceAccount widen the rules.
      const unguarded = await updateAsInjector(widen, true);
      assert.equal(unguarded.status, 200, `without the guard, RBAC alone allows it: ${JSON.stringify(unguarded.body)}`);
      await apply(byKind('ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'NetworkPolicy'));
      const policy = await api().ok('GET', '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/envoy-injector-webhook-guard');
      // The API server type-checks the CEL against the MutatingWebhookConfiguration schema.
      assert.deepEqual(policy.status?.typeChecking?.expressionWarnings ?? [], [], JSON.stringify(policy.status));
      // The policy takes effect once the API server has loaded it and its binding (asynchronously):
      // wait until a widening update is refused, sent as a dry run so nothing is ever changed.
      await waitFor(
        'the webhook-guard policy to take effect',
        async () => {
          const response = await updateAsInjector(widen, true);
          return response.status >= 400 && POLICY_MESSAGE.test(String(response.body?.message)) ? response : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
    });

    test("the injector's ServiceAccount may rotate every caBundle (what tls.mode secret does)", async () => {
      const response = await updateAsInjector((mwc) => {
        for (const webhook of mwc['webhooks']) webhook.clientConfig.caBundle = caBundleOf('-----BEGIN CERTIFICATE-----\nrotated\n-----END CERTIFICATE-----\n');
      });
      assert.equal(response.status, 200, JSON.stringify(response.body));
      for (const webhook of (await current())['webhooks']) assert.equal(webhook.clientConfig.caBundle, caBundleOf('-----BEGIN CERTIFICATE-----\nrotated\n-----END CERTIFICATE-----\n'));
      // And an update that changes nothing at all.
      assert.equal((await updateAsInjector(() => {})).status, 200);
    });

    const refused: readonly { readonly name: string; readonly change: (mwc: Obj) => void }[] = [
      { name: 'rules widened to */*', change: widen },
      { name: 'rules given another operation', change: (mwc) => mwc['webhooks'][1].rules[0].operations.push('UPDATE') },
      {
        name: 'clientConfig repointed to a URL',
        change: (mwc) => {
          mwc['webhooks'][0].clientConfig = { url: 'https://attacker.example/mutate', caBundle: mwc['webhooks'][0].clientConfig.caBundle };
        },
      },
      { name: "clientConfig's Service changed", change: (mwc) => (mwc['webhooks'][0].clientConfig.service.namespace = 'default') },
      { name: "clientConfig's path changed", change: (mwc) => (mwc['webhooks'][1].clientConfig.service.path = '/other') },
      { name: 'failurePolicy set to Ignore', change: (mwc) => (mwc['webhooks'][0].failurePolicy = 'Ignore') },
      { name: 'namespaceSelector dropped', change: (mwc) => delete mwc['webhooks'][0].namespaceSelector },
      { name: 'objectSelector changed', change: (mwc) => (mwc['webhooks'][1].objectSelector = {}) },
      { name: 'timeoutSeconds changed', change: (mwc) => (mwc['webhooks'][0].timeoutSeconds = 30) },
      { name: 'a webhook added', change: (mwc) => mwc['webhooks'].push({ ...structuredClone(mwc['webhooks'][0]), name: 'extra.envoy-injector.io' }) },
      { name: 'a webhook removed', change: (mwc) => mwc['webhooks'].pop() },
      { name: 'the webhooks reordered', change: (mwc) => mwc['webhooks'].reverse() },
      { name: 'a webhook renamed', change: (mwc) => (mwc['webhooks'][0].name = 'renamed.envoy-injector.io') },
      { name: 'a label changed', change: (mwc) => (mwc['metadata'].labels = { ...mwc['metadata'].labels, 'app.kubernetes.io/name': 'other' }) },
      { name: 'an annotation added', change: (mwc) => (mwc['metadata'].annotations = { ...mwc['metadata'].annotations, note: 'x' }) },
      { name: 'a finalizer added', change: (mwc) => (mwc['metadata'].finalizers = ['example.com/hold']) },
    ];
    for (const { name, change } of refused) {
      test(`the injector's ServiceAccount is refused: ${name}`, async () => {
        const before = await current();
        // Together with a caBundle rotation, so the refusal is for the other change alone.
        const response = await updateAsInjector((mwc) => {
          for (const webhook of mwc['webhooks']) if (webhook.clientConfig !== undefined) webhook.clientConfig.caBundle = caBundleOf(`next ${name}`);
          change(mwc);
        });
        assert.ok(response.status === 403 || response.status === 422, `refused, not ${response.status}: ${JSON.stringify(response.body)}`);
        assert.match(String(response.body?.message), /ValidatingAdmissionPolicy 'envoy-injector-webhook-guard'/);
        assert.match(String(response.body?.message), POLICY_MESSAGE);
        const after = await current();
        assert.equal(after['metadata'].resourceVersion, before['metadata'].resourceVersion, 'nothing changed');
      });
    }

    test('an admin is not bound by the policy (it matches the injector\'s ServiceAccount only)', async () => {
      const admin = structuredClone(await current());
      widen(admin);
      const response = await api().request('PUT', `${MWC_PATH}?dryRun=All`, admin);
      assert.equal(response.status, 200, `an admin's update passes: ${JSON.stringify(response.body)}`);
    });
  },
);
