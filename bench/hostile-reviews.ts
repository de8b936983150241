// AdmissionReviews an attacker (or a broken controller) can send: mutating admission runs before the
// API server validates the pod, so the webhook sees objects the API server would refuse later. Each
// is about 2 MB, under the default body limit. Shared by the tests (each gets a documented answer
// while /healthz answers) and by `npm run bench` (CPU of each against JSON.parse of its body).
import { reviewOf, typicalPod } from './pods.ts';

type Obj = Record<string, unknown>;

/** Target size of each hostile body. */
export const HOSTILE_BYTES = 2 * 1024 * 1024;

/** Repeats `item(i)` joined by `separator` until the text reaches `bytes`. */
function fill(bytes: number, separator: string, item: (i: number) => string): string {
  const parts: string[] = [];
  let length = 0;
  for (let i = 0; length < bytes; i++) {
    const part = item(i);
    parts.push(part);
    length += part.length + separator.length;
  }
  return parts.join(separator);
}

/** The typical pod with `annotations` added. */
function podWithAnnotations(annotations: Obj): Obj {
  const pod = typicalPod() as { metadata: Obj };
  return { ...pod, metadata: { ...pod.metadata, annotations: { ...(pod.metadata['annotations'] as Obj), ...annotations } } };
}

/** The typical pod with extra labels. */
function podWithLabels(labels: Obj): Obj {
  const pod = typicalPod() as { metadata: Obj };
  return { ...pod, metadata: { ...pod.metadata, labels: { ...(pod.metadata['labels'] as Obj), ...labels } } };
}

/** A distinct IPv4 /32 for every i (10.0.0.0/8 holds 16 million). */
const distinctCidr = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`;
/** A distinct IPv6 /128 for every i, as long as IPv6 addresses get. */
const distinctCidr6 = (i: number) => `fd00:1234:5678:9abc:def0:${((i >> 16) & 0xffff).toString(16)}:${(i & 0xffff).toString(16)}:1/128`;

/** One hostile review: its name and its body as sent. */
export interface HostileReview {
  readonly name: string;
  /** What the webhook is expected to answer: `denied` (allowed: false, 400) or `admitted` (allowed, maybe patched). */
  readonly expect: 'denied' | 'admitted';
  readonly body: string;
}

/** Returns every hostile review, each about `bytes` long. */
export function hostileReviews(bytes: number = HOSTILE_BYTES): HostileReview[] {
  const key = 'envoy-injector.io/';
  const make = (name: string, expect: HostileReview['expect'], pod: Obj): HostileReview => ({ name, expect, body: JSON.stringify(reviewOf(pod)) });
  return [
    make('distinct IPv4 CIDRs in exclude-outbound-ip-ranges', 'denied', podWithAnnotations({ [`${key}exclude-outbound-ip-ranges`]: fill(bytes, ',', distinctCidr) })),
    make('distinct IPv6 CIDRs in include-outbound-ip-ranges', 'denied', podWithAnnotations({ [`${key}include-outbound-ip-ranges`]: fill(bytes, ',', distinctCidr6) })),
    make('long port list in exclude-inbound-ports', 'denied', podWithAnnotations({ [`${key}exclude-inbound-ports`]: fill(bytes, ',', (i) => String((i % 65535) + 1)) })),
    make('port list of blanks and commas', 'denied', podWithAnnotations({ [`${key}exclude-outbound-ports`]: fill(bytes, ' , ', () => '80') })),
    make('1 MB unknown annotation key', 'admitted', podWithAnnotations({ [`${key}${'x'.repeat(bytes / 2)}`]: 'true' })),
    make('1 MB misspelt annotation key', 'admitted', podWithAnnotations({ [`${key}exclude-inbound-port${'s'.repeat(bytes / 2)}`]: '80' })),
    make(
      '20k unknown annotation keys',
      'admitted',
      podWithAnnotations(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`${key}exclude-inbound-port-${i}`, `${'v'.repeat(Math.max(0, Math.floor(bytes / 20_000) - 40))}`]))),
    ),
    make('2 MB inject annotation value', 'admitted', podWithAnnotations({ [`${key}inject`]: `t${'r'.repeat(bytes)}ue` })),
    make('2 MB proxy-image value', 'denied', podWithAnnotations({ [`${key}proxy-image`]: `envoyproxy/envoy:${'a'.repeat(bytes)}` })),
    make('2 MB log-level value', 'denied', podWithAnnotations({ [`${key}log-level`]: ' '.repeat(bytes) + 'x' })),
    make('20k labels', 'admitted', podWithLabels(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`label-${i}`, 'v'.repeat(Math.max(0, Math.floor(bytes / 20_000) - 20))])))),
    make(
      '10k containers',
      'admitted',
      (() => {
        const pod = typicalPod() as { spec: Obj };
        const containers = Array.from({ length: 10_000 }, (_, i) => ({ name: `c${i}`, image: 'nginx', ports: [{ containerPort: 1000 + (i % 60000) }, { containerPort: 8080, protocol: 'UDP' }] }));
        return { ...pod, spec: { ...pod.spec, containers } };
      })(),
    ),
    make(
      '20k volumes',
      'admitted',
      (() => {
        const pod = typicalPod() as { spec: Obj };
        const volumes = Array.from({ length: 20_000 }, (_, i) => ({ name: `v${i}`, emptyDir: {} }));
        return { ...pod, spec: { ...pod.spec, volumes } };
      })(),
    ),
  ];
}
