// What `envoy-injector check` concludes about an installation (SPEC.md §9), as findings with stable
// codes (findings.ts): the webhook configuration and its caBundle against the serving certificate,
// the Service's ready endpoints, the nodes' kubelets, the labelled namespaces, and pods there that
// run without the proxy or with a stale one. Pure: it judges the objects kube/installation.ts
// fetched, and the CLI prints what it returns, as text or JSON.
import { Buffer } from 'node:buffer';
import { X509Certificate } from 'node:crypto';
import { PATHS, STATUS_ANNOTATION } from '../constants.ts';
import { admissionContext } from '../core/context.ts';
import { decide } from '../core/decide.ts';
import { formatDifference, type ProxyDifference } from '../core/differences.ts';
import { proxyDrift, type ProxyDrift } from '../core/drift.ts';
import { formatAnnotationErrors, resolveSettings } from '../core/overrides.ts';
import type { CaptureMode, InjectorConfig, InjectorRuntime, Json, JsonObject } from '../core/types.ts';
import type { InstallationObjects } from '../kube/installation.ts';
import { describeOlderKubelets, NATIVE_SIDECAR_MIN_MINOR, type KubeletSurvey } from '../kube/version.ts';
import { webhookCaBundles } from '../tls/ca-bundle.ts';
import { bundleTrusts, certificateCovers, splitPemCertificates } from '../tls/certificates.ts';
import { CERT_FILES } from '../tls/local.ts';
import { finding, type Finding, type FindingCode } from './findings.ts';

/** What a pod's state means for its proxy. */
export interface PodAssessment {
  readonly state: 'injected' | 'stale' | 'not-injected' | 'skipped' | 'would-deny';
  readonly detail: string;
  /** A stale pod's: what differs between its proxy and the one injecting it now gives. */
  readonly differences?: readonly ProxyDifference[];
}

/** How many differences the text of a stale pod's finding names (-o json lists them all). */
const SHOWN_DIFFERENCES = 8;

/** Returns what differs for a stale pod, as the text of its finding says it. */
function staleDetail(drift: Extract<ProxyDrift, { state: 'stale' }>): string {
  const hashes = `config hash ${drift.status.configHash} from ${drift.status.version}, now ${drift.expectedHash}`;
  if (!drift.comparison.ok) return `${hashes} (what differs is not known: ${drift.comparison.problem})`;
  const { differences } = drift.comparison;
  if (differences.length === 0) return `${hashes}; nothing the injected containers show differs`;
  const shown = differences.slice(0, SHOWN_DIFFERENCES).map(formatDifference);
  const more = differences.length - shown.length;
  return `${shown.join(', ')}${more > 0 ? ` and ${more} more (-o json lists them)` : ''} (${hashes})`;
}

const DAY_MS = 24 * 60 * 60 * 1000;
const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);
const stringMap = (value: Json | undefined): Record<string, string> =>
  isObject(value) ? Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string')) : {};
const metadataOf = (object: JsonObject): JsonObject => (isObject(object['metadata']) ? object['metadata'] : {});
const nameOf = (object: JsonObject): string => String(metadataOf(object)['name'] ?? '');
const day = (date: Date) => date.toISOString().slice(0, 10);

/**
 * Returns what a running pod's proxy state is: injected with the configuration the injector would
 * give it today, injected with another (stale), not injected although it would be now, skipped by
 * design (with the reasons), or one the injector would now deny.
 */
export function assessPod(
  pod: JsonObject,
  namespaceLabels: Readonly<Record<string, string>>,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  namespaceAnnotations: Readonly<Record<string, string>> = {},
): PodAssessment {
  const metadata = metadataOf(pod);
  const namespace = String(metadata['namespace'] ?? '');
  const ctx = admissionContext({ namespace, namespaceLabels, namespaceAnnotations });
  const drift = proxyDrift(pod, ctx, config, runtime);
  switch (drift?.state) {
    case undefined:
      break;
    case 'unknown-status':
      return { state: 'stale', detail: `its ${STATUS_ANNOTATION} annotation is not one this injector writes` };
    case 'invalid-annotations':
      return { state: 'stale', detail: `its annotations are no longer valid: ${formatAnnotationErrors(drift.errors)}` };
    case 'current':
      return { state: 'injected', detail: `config hash ${drift.configHash}` };
    case 'stale':
      return { state: 'stale', detail: staleDetail(drift), ...(drift.comparison.ok ? { differences: drift.comparison.differences } : {}) };
  }
  const { decision } = decide(pod, ctx, config, runtime);
  const reasons = decision.reasons.map((r) => r.code).join(', ');
  if (decision.action === 'inject') return { state: 'not-injected', detail: `would be injected now (${reasons})` };
  if (decision.action === 'deny') return { state: 'would-deny', detail: decision.reasons.map((r) => r.message).join(' ') };
  return { state: 'skipped', detail: reasons };
}

/** Whether the pod still runs (finished and terminating pods are left out). */
function running(pod: JsonObject): boolean {
  const phase = isObject(pod['status']) ? pod['status']['phase'] : undefined;
  return phase !== 'Succeeded' && phase !== 'Failed' && metadataOf(pod)['deletionTimestamp'] === undefined;
}

/** Which replica an endpoint is: its pod (the same in every slice) or, without one, its addresses. */
function endpointIdentity(endpoint: JsonObject): string {
  const ref = isObject(endpoint['targetRef']) ? endpoint['targetRef'] : undefined;
  if (ref !== undefined && typeof ref['uid'] === 'string' && ref['uid'] !== '') return `uid:${ref['uid']}`;
  if (ref !== undefined && typeof ref['name'] === 'string') return `ref:${String(ref['kind'] ?? '')}/${String(ref['namespace'] ?? '')}/${ref['name']}`;
  const addresses = Array.isArray(endpoint['addresses']) ? endpoint['addresses'].map(String).sort() : [];
  return `addresses:${addresses.join(',')}`;
}

/**
 * Returns how many distinct replicas the EndpointSlices of a Service list as ready and not ready. A
 * dual-stack Service has one slice per address family, so one replica appears in several slices:
 * it counts once, as ready if any slice lists it ready.
 */
export function countEndpoints(slices: readonly JsonObject[]): { ready: number; notReady: number } {
  const readiness = new Map<string, boolean>();
  for (const slice of slices) {
    for (const endpoint of (Array.isArray(slice['endpoints']) ? slice['endpoints'] : []).filter(isObject)) {
      const conditions = isObject(endpoint['conditions']) ? endpoint['conditions'] : {};
      // An unset `ready` means ready (EndpointConditions).
      const ready = conditions['ready'] !== false;
      const key = endpointIdentity(endpoint);
      readiness.set(key, (readiness.get(key) ?? false) || ready);
    }
  }
  const ready = [...readiness.values()].filter(Boolean).length;
  return { ready, notReady: readiness.size - ready };
}

/** Pod Security Standards levels that refuse envoy-init (root, NET_ADMIN and NET_RAW). */
const REFUSING_POD_SECURITY_LEVELS: readonly string[] = ['baseline', 'restricted'];
const POD_SECURITY_LABEL = 'pod-security.kubernetes.io';

/**
 * Returns which capture mode each labelled namespace's Pod Security admits, and what that means for
 * the mode in use: Pod Security admission checks the pod after the webhooks mutated it; in init mode
 * envoy-init runs as root with NET_ADMIN and NET_RAW, which `baseline` (those capabilities) and
 * `restricted` (root too) forbid, while in cni mode it runs unprivileged and passes both. `enforce`
 * refusing the mode in use is a warn; `warn` only makes kubectl print a warning (info).
 */
export function podSecurityFindings(namespaces: readonly JsonObject[], mode: CaptureMode = 'init'): Finding[] {
  const enforced: Finding[] = [];
  const warned: Finding[] = [];
  const cniOnly: string[] = [];
  const either: string[] = [];
  for (const ns of [...namespaces].sort((a, b) => nameOf(a).localeCompare(nameOf(b)))) {
    const labels = stringMap(metadataOf(ns)['labels']);
    const enforce = labels[`${POD_SECURITY_LABEL}/enforce`];
    const warn = labels[`${POD_SECURITY_LABEL}/warn`];
    if (enforce !== undefined && REFUSING_POD_SECURITY_LEVELS.includes(enforce)) {
      if (mode === 'cni') cniOnly.push(`${nameOf(ns)} (${enforce})`);
      else {
        enforced.push(
          finding(
            'pod-security-enforced',
            `${nameOf(ns)} enforces Pod Security "${enforce}": every injected pod is refused there, since envoy-init runs as root with NET_ADMIN and NET_RAW in capture mode init; use capture.mode cni (README "CNI mode"), set ${POD_SECURITY_LABEL}/enforce=privileged on the namespace (or exempt it in the API server's PodSecurity configuration), or stop injecting there`,
          ),
        );
      }
      continue;
    }
    either.push(nameOf(ns));
    if (mode === 'init' && warn !== undefined && REFUSING_POD_SECURITY_LEVELS.includes(warn)) {
      warned.push(
        finding(
          'pod-security-warned',
          `${nameOf(ns)}: kubectl prints a Pod Security warning for every injected pod (${POD_SECURITY_LABEL}/warn=${warn}): envoy-init runs as root with NET_ADMIN and NET_RAW in capture mode init (capture mode cni would not warn)`,
        ),
      );
    }
  }
  return [
    ...enforced,
    ...warned,
    ...(cniOnly.length === 0
      ? []
      : [finding('pod-security-cni-only', `injected pods are admitted in capture mode cni only (the mode in use) in: ${cniOnly.join(', ')}`)]),
    ...(either.length === 0 ? [] : [finding('capture-modes-admitted', `both capture modes are admitted in: ${either.join(', ')}`)]),
  ];
}

/** What `check` learnt about native sidecars and the nodes' kubelets (nothing with `nativeSidecar: false`). */
export interface NativeSidecarCheck {
  readonly setting: 'auto' | 'true';
  /** How `auto` resolves now. */
  readonly detail?: string;
  /** The nodes' kubelets, when they could be listed. */
  readonly kubelets?: KubeletSurvey;
  /** What could not be checked. */
  readonly problem?: string;
}

/**
 * Returns what the nodes' kubelets mean for the native sidecars the webhook may inject: a kubelet
 * older than 1.29 runs an init container with `restartPolicy: Always` as an ordinary one that never
 * exits, so an injected pod scheduled there hangs in Init.
 */
export function nativeSidecarFindings(check: NativeSidecarCheck, namespace: string): Finding[] {
  const { setting, kubelets, problem, detail } = check;
  if (problem !== undefined) return [finding('native-sidecar-unchecked', `nativeSidecar ${setting}: ${problem}`)];
  if (kubelets === undefined) return detail === undefined ? [] : [finding('native-sidecar-resolved', `nativeSidecar ${setting}: ${detail}`)];
  if (kubelets.older.length === 0) {
    const nodes = `${kubelets.nodes} node${kubelets.nodes === 1 ? '' : 's'}`;
    const message = setting === 'auto' && detail !== undefined ? `nativeSidecar auto: ${detail}` : `nativeSidecar true: every kubelet ≥ 1.${NATIVE_SIDECAR_MIN_MINOR} (${nodes})`;
    return [finding('kubelets-run-native-sidecars', message)];
  }
  const older = describeOlderKubelets(kubelets);
  if (setting === 'true') {
    return [
      finding(
        'kubelets-too-old',
        `${older}: with nativeSidecar true, injected pods scheduled there hang in Init (the envoy init container never exits) — set nativeSidecar to auto or false, or upgrade those nodes`,
      ),
    ];
  }
  return [
    finding(
      'kubelets-too-old-for-auto',
      `${older}: nativeSidecar auto gives classic sidecars while they remain, but a replica started before such a node joined still injects native sidecars, which hang in Init there — restart the injector after adding one (kubectl -n ${namespace} rollout restart deployment/envoy-injector)`,
    ),
  ];
}

/** What `check` knows besides the fetched objects. */
export interface AssessOptions {
  readonly now: Date;
  /** Native sidecars against the nodes' kubelets (see NativeSidecarCheck). */
  readonly nativeSidecar?: NativeSidecarCheck;
  /** The bootstrap override ConfigMaps pods name, as read and checked (see OverrideCheck). */
  readonly overrides?: readonly OverrideCheck[];
}

/** A bootstrap override ConfigMap pods name (SPEC.md §4a), and what became of reading and checking it. */
export interface OverrideCheck {
  /** `namespace/name`. */
  readonly key: string;
  /** The pods naming it (`namespace/name`). */
  readonly pods: readonly string[];
  /** `valid`; `missing` (no ConfigMap, or no key envoy.yaml); `invalid`, with the problems; `unreadable` (403). */
  readonly state: 'valid' | 'missing' | 'invalid' | 'unreadable';
  readonly detail?: string;
}

/** Returns a finding per bootstrap override ConfigMap pods name. */
export function overrideFindings(checks: readonly OverrideCheck[]): Finding[] {
  return checks.map((c) => {
    const who = `${c.pods.length} pod${c.pods.length === 1 ? '' : 's'} (${c.pods.slice(0, 3).join(', ')}${c.pods.length > 3 ? ', …' : ''})`;
    switch (c.state) {
      case 'valid':
        return finding('bootstrap-override-valid', `ConfigMap ${c.key}: a valid bootstrap override for ${who}`);
      case 'missing':
        return finding('bootstrap-override-missing', `ConfigMap ${c.key}: ${c.detail ?? 'not found'}, but ${who} load it as their bootstrap override: they cannot start`);
      case 'invalid':
        return finding('bootstrap-override-invalid', `ConfigMap ${c.key}: the bootstrap override of ${who} would fail: ${c.detail ?? ''}`);
      case 'unreadable':
        return finding('bootstrap-override-unreadable', `ConfigMap ${c.key}: cannot be read to check it (${c.detail ?? 'forbidden'})`);
    }
  });
}

/**
 * Returns the namespace defaults (SPEC.md §4b) of the labelled namespaces that are invalid: pods there
 * that do not set those settings themselves would be denied.
 */
export function namespaceAnnotationFindings(namespaces: readonly JsonObject[], config: InjectorConfig, runtime: InjectorRuntime): Finding[] {
  return [...namespaces]
    .sort((a, b) => nameOf(a).localeCompare(nameOf(b)))
    .flatMap((ns) => {
      const resolved = resolveSettings({}, { name: nameOf(ns), annotations: stringMap(metadataOf(ns)['annotations']) }, config, runtime);
      if (resolved.ok) return [];
      return [
        finding(
          'namespace-annotation-invalid',
          `${nameOf(ns)}: invalid defaults for its pods, which are denied where they do not set their own: ${formatAnnotationErrors(resolved.errors)}`,
        ),
      ];
    });
}

/** Judges the installation `config` describes from its fetched objects; every finding has a code. */
export function assessInstallation(
  objects: InstallationObjects,
  config: InjectorConfig,
  runtime: InjectorRuntime,
  options: AssessOptions,
): Finding[] {
  const { now } = options;
  const findings: Finding[] = [];
  const add = (code: FindingCode, message: string) => findings.push(finding(code, message));
  const { namespace } = config;
  const serviceName = config.tls.serviceName;
  const { secretName, secret, secretUnreadable } = objects;

  // 1. The webhook configuration and where it sends requests.
  const configuration = objects.webhookConfiguration;
  const bundles = configuration === undefined ? [] : webhookCaBundles(configuration);
  // A webhook's service reference defaults to port 443 when it names none.
  let servicePort = 443;
  if (configuration === undefined) {
    add('webhook-configuration-missing', `MutatingWebhookConfiguration ${config.tls.webhookConfigName} not found: nothing calls the injector (install it: kubectl apply -k manifests/)`);
  } else {
    const webhooks = (Array.isArray(configuration['webhooks']) ? configuration['webhooks'] : []).filter(isObject);
    if (webhooks.length === 0) add('webhook-configuration-empty', `MutatingWebhookConfiguration ${config.tls.webhookConfigName} has no webhooks`);
    const described: string[] = [];
    for (const webhook of webhooks) {
      const name = String(webhook['name'] ?? '');
      const clientConfig = isObject(webhook['clientConfig']) ? webhook['clientConfig'] : {};
      const service = isObject(clientConfig['service']) ? clientConfig['service'] : undefined;
      described.push(`${name} (failurePolicy ${String(webhook['failurePolicy'] ?? 'Fail')})`);
      if (service === undefined) {
        add('webhook-calls-url', `webhook ${name} calls ${String(clientConfig['url'] ?? 'nothing')}, not the Service ${namespace}/${serviceName}`);
        continue;
      }
      const target = `${String(service['namespace'])}/${String(service['name'])}`;
      if (target !== `${namespace}/${serviceName}`) add('webhook-calls-other-service', `webhook ${name} calls Service ${target}, but the config names ${namespace}/${serviceName}`);
      if ((service['path'] ?? '/') !== PATHS.mutate) add('webhook-wrong-path', `webhook ${name} calls path ${String(service['path'] ?? '/')}, not ${PATHS.mutate}`);
      if (typeof service['port'] === 'number') servicePort = service['port'];
    }
    if (webhooks.length > 0) {
      add('webhook-configuration-ok', `MutatingWebhookConfiguration ${config.tls.webhookConfigName}: ${described.join(', ')} → Service ${namespace}/${serviceName}:${servicePort}${PATHS.mutate}`);
    }
  }

  // 2. The caBundle against the certificate the replicas serve (read from their Secret).
  const missingBundle = bundles.filter((b) => b.caBundle === undefined).map((b) => b.name);
  if (missingBundle.length > 0) add('ca-bundle-missing', `webhook ${missingBundle.join(', ')} has no caBundle: the API server cannot verify the injector`);
  if (secretUnreadable !== undefined) {
    add('secret-unreadable', `cannot read Secret ${namespace}/${secretName} to compare the caBundle with the served certificate (${secretUnreadable})`);
  } else if (secret === undefined) {
    add(
      'secret-missing',
      config.tls.mode === 'secret'
        ? `Secret ${namespace}/${secretName} not found: the replicas have not created their certificate yet (are they running?)`
        : `Secret ${namespace}/${secretName} not found (with tls.mode files, name the mounted Secret with --secret)`,
    );
  } else {
    const data = isObject(secret['data']) ? secret['data'] : {};
    const encoded = data[CERT_FILES.cert];
    const pem = typeof encoded === 'string' ? Buffer.from(encoded, 'base64').toString('utf8') : '';
    const [leafPem] = splitPemCertificates(pem);
    if (leafPem === undefined) {
      add('secret-without-certificate', `Secret ${namespace}/${secretName} holds no certificate in ${CERT_FILES.cert}`);
    } else {
      const leaf = new X509Certificate(leafPem);
      const notAfter = new Date(leaf.validTo);
      const host = `${serviceName}.${namespace}.svc`;
      const untrusting = bundles.filter((b) => b.caBundle !== undefined && !bundleTrusts(b.caBundle, pem, now)).map((b) => b.name);
      if (untrusting.length > 0) {
        add('ca-bundle-untrusting', `the caBundle of webhook ${untrusting.join(', ')} does not trust the serving certificate in Secret ${namespace}/${secretName}: the API server's calls fail TLS`);
      } else if (bundles.length > 0 && missingBundle.length === 0) {
        add('ca-bundle-trusted', `the caBundle of every webhook trusts the serving certificate in Secret ${namespace}/${secretName} (expires ${day(notAfter)})`);
      }
      if (!certificateCovers(leaf, host)) add('certificate-wrong-name', `the serving certificate does not name ${host}, the name the API server calls`);
      if (notAfter.getTime() <= now.getTime()) add('certificate-expired', `the serving certificate expired on ${day(notAfter)}`);
      else if (notAfter.getTime() <= now.getTime() + config.tls.renewBeforeDays * DAY_MS) {
        add('certificate-expiring', `the serving certificate expires on ${day(notAfter)}, within tls.renewBeforeDays (${config.tls.renewBeforeDays})`);
      }
    }
  }

  // 3. The Service and its ready endpoints.
  const service = objects.service;
  if (service === undefined) {
    add('service-missing', `Service ${namespace}/${serviceName} not found: the API server cannot reach the webhook`);
  } else {
    const ports = (isObject(service['spec']) && Array.isArray(service['spec']['ports']) ? service['spec']['ports'] : []).filter(isObject);
    if (!ports.some((p) => p['port'] === servicePort)) add('service-port-missing', `Service ${namespace}/${serviceName} has no port ${servicePort}, which the webhooks call`);
    const { ready, notReady } = countEndpoints(objects.endpointSlices);
    const others = notReady > 0 ? ` (${notReady} not ready)` : '';
    if (ready === 0) add('service-no-ready-endpoints', `Service ${namespace}/${serviceName} has no ready endpoints${others}: pod creations the webhooks match fail while it has none`);
    else if (ready === 1) add('service-single-endpoint', `Service ${namespace}/${serviceName}: 1 ready endpoint${others}; one replica is a single point of failure`);
    else add('service-ready', `Service ${namespace}/${serviceName}: ${ready} ready endpoints${others}`);
  }

  // 4. The nodes' kubelets, when the webhook may inject native sidecars.
  if (options.nativeSidecar !== undefined) findings.push(...nativeSidecarFindings(options.nativeSidecar, namespace));

  // 5. Labelled namespaces, and 6. the pods in them (plus pods that opted in by label elsewhere).
  const excluded = (ns: string) => ns === namespace || config.excludedNamespaces.includes(ns);
  const labelled = objects.labelledNamespaces.map(nameOf).sort();
  const active = labelled.filter((ns) => !excluded(ns));
  const ignored = labelled.filter(excluded);
  if (active.length === 0) add('no-namespace-labelled', `no namespace is labelled envoy-injector.io/inject=enabled: only pods labelled so are injected`);
  else add('namespaces-labelled', `${active.length} namespace${active.length === 1 ? '' : 's'} labelled envoy-injector.io/inject=enabled: ${active.join(', ')}`);
  const activeObjects = objects.labelledNamespaces.filter((ns) => !excluded(nameOf(ns)));
  findings.push(...podSecurityFindings(activeObjects, config.capture.mode));
  findings.push(...namespaceAnnotationFindings(activeObjects, config, runtime));
  if (ignored.length > 0) add('namespaces-excluded', `labelled but excluded (never injected): ${ignored.join(', ')}`);

  const counts = new Map<string, Record<PodAssessment['state'], number>>();
  for (const { key, pod, namespaceLabels, namespaceAnnotations } of objects.pods) {
    if (!running(pod)) continue;
    const ns = key.slice(0, key.indexOf('/'));
    const assessment = assessPod(pod, namespaceLabels, config, runtime, namespaceAnnotations);
    const count = counts.get(ns) ?? { injected: 0, stale: 0, 'not-injected': 0, skipped: 0, 'would-deny': 0 };
    count[assessment.state]++;
    counts.set(ns, count);
    if (assessment.state === 'not-injected') {
      add('pod-not-injected', `${key}: runs without the proxy, ${assessment.detail}; it was created while the webhook was unreachable or before injection was enabled — restart its workload`);
    } else if (assessment.state === 'stale') {
      findings.push(finding('pod-stale-proxy', `${key}: stale proxy: ${assessment.detail} — restart its workload to update it`, assessment.differences));
    } else if (assessment.state === 'would-deny') {
      add('pod-would-be-denied', `${key}: runs without the proxy, and would be refused now: ${assessment.detail}`);
    }
  }
  for (const [ns, count] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
    const parts = [`${count.injected} injected`];
    if (count.stale > 0) parts.push(`${count.stale} stale`);
    if (count['not-injected'] > 0) parts.push(`${count['not-injected']} not injected`);
    if (count['would-deny'] > 0) parts.push(`${count['would-deny']} would be refused`);
    if (count.skipped > 0) parts.push(`${count.skipped} skipped by design`);
    const total = Object.values(count).reduce((a, b) => a + b, 0);
    const healthy = count.stale === 0 && count['not-injected'] === 0 && count['would-deny'] === 0;
    add(healthy ? 'pods-healthy' : 'pods-need-attention', `${ns}: ${total} running pod${total === 1 ? '' : 's'}: ${parts.join(', ')}`);
  }
  findings.push(...overrideFindings(options.overrides ?? []));
  return findings;
}
