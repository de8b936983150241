// Pod Security admission on a real kube-apiserver (≥ 1.30 of ../shared/envtest): an injected pod in a
// namespace enforcing `restricted` (or `baseline`) is admitted when the capture is installed by the
// CNI plugin, and refused in init mode with the reason the README documents (envoy-init's NET_ADMIN
// and NET_RAW, and it running as root). The pods are injected by the same core the webhook runs;
// Pod Security validates after every mutation, so the pod it sees is exactly this one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admissionContext } from '../src/core/context.ts';
import { injectPod } from '../src/core/inject.ts';
import { testConfig, testRuntime } from './support/config.ts';
import { describeApiServers } from './support/envtest.ts';

const TIMEOUT = { timeout: 120_000 };

/** An app pod that `restricted` admits by itself, so any refusal is the injection's. */
function appPod(name: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: {
      securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
      containers: [
        {
          name: 'app',
          image: 'registry.example/app:1',
          ports: [{ containerPort: 8080 }],
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
      ],
    },
  };
}

function injected(name: string, namespace: string, mode: 'init' | 'cni', native: boolean): Record<string, unknown> {
  const result = injectPod(
    appPod(name),
    admissionContext({ namespace }),
    testConfig({ ENVOY_INJECTOR_CAPTURE_MODE: mode, ENVOY_INJECTOR_NATIVE_SIDECAR: native ? 'true' : 'false' }),
    testRuntime,
  );
  assert.ok(result.pod, `${name} is injected`);
  return result.pod as Record<string, unknown>;
}

describeApiServers('Pod Security admits injected pods in cni mode only', { minMinor: 30 }, (api) => {
  for (const level of ['restricted', 'baseline'] as const) {
    test(`${level}: cni mode admitted (native and classic sidecar); init mode refused naming envoy-init's capabilities`, TIMEOUT, async () => {
      const envtest = api();
      const namespace = `psa-${level}`;
      await envtest.createNamespace(namespace, {
        'envoy-injector.io/inject': 'enabled',
        'pod-security.kubernetes.io/enforce': level,
        'pod-security.kubernetes.io/enforce-version': 'latest',
      });
      const path = `/api/v1/namespaces/${namespace}/pods`;
      // The app alone passes: what follows is about the injection only.
      assert.equal((await envtest.request('POST', path, appPod('plain'))).status, 201);
      for (const native of [true, false]) {
        const suffix = native ? 'native' : 'classic';
        const cni = await envtest.request('POST', path, injected(`cni-${suffix}`, namespace, 'cni', native));
        assert.equal(cni.status, 201, JSON.stringify(cni.body));
        assert.deepEqual(cni.warnings, []);

        const init = await envtest.request('POST', path, injected(`init-${suffix}`, namespace, 'init', native));
        assert.equal(init.status, 403, JSON.stringify(init.body));
        const message: string = init.body.message;
        assert.match(message, new RegExp(`violates PodSecurity "${level}:latest"`));
        assert.match(message, /container "envoy-init" must not include "NET_ADMIN", "NET_RAW" in securityContext\.capabilities\.add/);
        if (level === 'restricted') {
          // Root too: restricted refuses envoy-init's runAsNonRoot=false and runAsUser=0.
          assert.match(message, /container "envoy-init" must not set securityContext\.runAsNonRoot=false/);
          assert.match(message, /runAsUser=0/);
        }
        // Nothing the injection adds besides envoy-init is named: envoy itself passes.
        assert.doesNotMatch(message, /container "envoy"[^-]/);
      }
    });
  }
});
