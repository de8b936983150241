// `tls.mode: secret`, the shared part: one Secret holds the CA and the serving certificate every
// replica serves. The first replica to find no Secret creates it; the others' creates fail with 409
// AlreadyExists and they read the winner's, so N replicas converge on one CA. A serving certificate
// that expires soon (or lacks a name) is renewed under the same CA with a replace conditional on the
// resourceVersion; the loser of a concurrent renewal gets 409 Conflict and adopts the winner's.
//
// Secret layout (type kubernetes.io/tls, the keys cert-manager uses too, so `tls.mode: files` can
// mount the same Secret): tls.crt / tls.key the serving pair, ca.key the CA's key, ca.crt the trust
// bundle — the active CA first, then older CAs still trusted during a CA rotation, so replicas still
// serving a certificate of the old CA stay trusted until they pick up the new one.
//
// A CA reset (the Secret deleted or unusable) works the same way: the new CA's trust bundle carries
// the CAs the webhook's caBundle trusts at that moment, so the replicas that have not run their pass
// yet stay trusted, for a short grace recorded in the annotation CARRIED_CAS_UNTIL_ANNOTATION. Once it
// has passed, the next pass drops every CA but the active one, so a leaked CA is got rid of.
import { Buffer } from 'node:buffer';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { CARRIED_CAS_UNTIL_ANNOTATION } from '../constants.ts';
import type { Json, JsonObject } from '../core/types.ts';
import { isAlreadyExists, isConflict, KubeApiError } from '../kube/api-error.ts';
import type { KubeResources } from '../kube/resources.ts';
import {
  certificateNames,
  generateCa,
  generateServingCert,
  normalizePemBundle,
  servingCertProblem,
  splitPemCertificates,
  type CertificateBundle,
} from './certificates.ts';
import { CERT_FILES } from './local.ts';

/** A CA, a serving certificate it signed, and the bundle of CAs clients must trust. */
export interface SecretBundle extends CertificateBundle {
  /** PEM: `caCert` first, then previous CAs that are still valid. This is the webhook's caBundle. */
  readonly trustBundle: string;
  /** When the CAs after `caCert` were carried over a CA reset: the time after which they are dropped. */
  readonly carriedUntil?: Date;
}

/** What was done to the Secret to obtain the bundle. */
export type SecretAction = 'reused' | 'created' | 'adopted' | 'renewed' | 'rotated-ca' | 'regenerated' | 'dropped-carried-cas';

/** What a CA reset carries over: the CAs trusted now, and for how long. */
export interface CarryOptions {
  /** PEM of the CAs the API server trusts now (the webhook's caBundles); read only when a new CA is made. */
  readonly trustedNow?: () => Promise<string>;
  /** How long carried CAs stay in the trust bundle. */
  readonly graceMs?: number;
}

/** The bundle the replicas serve under, and how it was obtained. */
export interface EnsuredSecret {
  readonly bundle: SecretBundle;
  readonly action: SecretAction;
  /** Why the Secret was written (for the log), when it was. */
  readonly reason?: string;
  /** 409 answers met on the way (creates lost to another replica, replaces that raced). */
  readonly conflicts: number;
}

/** Where the Secret is and what its certificate must satisfy. */
export interface SecretTarget {
  readonly namespace: string;
  readonly name: string;
  /** Names the serving certificate must carry. */
  readonly dnsNames: readonly string[];
  readonly renewBeforeDays: number;
}

/** Labels on the Secret, so an admin can tell what it belongs to. */
const SECRET_LABELS = { 'app.kubernetes.io/name': 'envoy-injector', 'app.kubernetes.io/component': 'webhook-tls' } as const;
/** Reads and writes before giving up until the next resync. */
const MAX_ATTEMPTS = 8;
const DAY_MS = 24 * 60 * 60 * 1000;

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

const validAt = (cert: X509Certificate, now: Date) =>
  new Date(cert.validFrom).getTime() <= now.getTime() + 5 * 60 * 1000 && now.getTime() < new Date(cert.validTo).getTime();

/** Returns the certificates of `pems` that parse and are valid at `now`, once each, leaving out `except`. */
function validCertificates(pems: readonly string[], now: Date, except: string): string[] {
  return [...new Set(pems)].filter((pem) => {
    if (pem === except) return false;
    try {
      return validAt(new X509Certificate(pem), now);
    } catch {
      return false;
    }
  });
}

/** Reads the carried-CAs deadline; one that does not parse counts as passed (the CAs are dropped). */
function carriedUntilOf(secret: JsonObject): Date | undefined {
  const metadata = isObject(secret['metadata']) ? secret['metadata'] : {};
  const annotations = isObject(metadata['annotations']) ? metadata['annotations'] : {};
  const value = annotations[CARRIED_CAS_UNTIL_ANNOTATION];
  if (typeof value !== 'string') return undefined;
  const time = Date.parse(value);
  return new Date(Number.isNaN(time) ? 0 : time);
}

/** Returns the bundle a Secret holds, or why it holds none that can be used as is. */
export function readSecretBundle(secret: JsonObject): SecretBundle | { problem: string } {
  const data = isObject(secret['data']) ? secret['data'] : {};
  const text: Record<string, string> = {};
  const missing: string[] = [];
  for (const key of [CERT_FILES.cert, CERT_FILES.key, CERT_FILES.caCert, CERT_FILES.caKey]) {
    const value = data[key];
    if (typeof value !== 'string' || value === '') missing.push(key);
    else text[key] = Buffer.from(value, 'base64').toString('utf8');
  }
  if (missing.length > 0) return { problem: `the Secret lacks ${missing.join(', ')}` };
  let caKey;
  try {
    caKey = createPrivateKey(text[CERT_FILES.caKey] as string);
  } catch (error) {
    return { problem: `${CERT_FILES.caKey} does not parse (${(error as Error).message})` };
  }
  // The active CA is the one ca.key belongs to; any other certificate of ca.crt is an older CA.
  const cas = splitPemCertificates(text[CERT_FILES.caCert] as string);
  const parsed = cas.flatMap((pem) => {
    try {
      return [{ pem, cert: new X509Certificate(pem) }];
    } catch {
      return [];
    }
  });
  const active = parsed.find((ca) => ca.cert.checkPrivateKey(caKey));
  if (active === undefined) return { problem: `no certificate of ${CERT_FILES.caCert} matches ${CERT_FILES.caKey}` };
  const others = parsed.filter((ca) => ca !== active).map((ca) => ca.pem);
  const carriedUntil = carriedUntilOf(secret);
  return {
    caCert: active.pem,
    caKey: text[CERT_FILES.caKey] as string,
    cert: text[CERT_FILES.cert] as string,
    key: text[CERT_FILES.key] as string,
    trustBundle: [active.pem, ...others].join(''),
    // The deadline only means something while there are carried CAs to drop.
    ...(carriedUntil !== undefined && others.length > 0 ? { carriedUntil } : {}),
  };
}

/**
 * Decides what the Secret should hold, given what it holds now (undefined: no Secret): the same
 * bundle, a renewed serving certificate under the same CA, a new CA (the old one stays trusted while
 * valid), everything new when what is there cannot be used (the CAs trusted now carried for
 * `carry.graceMs`), or the same bundle without its carried CAs once their grace has passed.
 */
export async function planSecretBundle(
  existing: SecretBundle | { problem: string } | undefined,
  dnsNames: readonly string[],
  now: Date,
  renewBeforeDays: number,
  carry: CarryOptions = {},
): Promise<{ action: 'reuse' | 'renew' | 'rotate-ca' | 'generate' | 'drop-carried'; bundle: SecretBundle; reason?: string }> {
  if (existing === undefined || 'problem' in existing) {
    const ca = await generateCa(now);
    const serving = await generateServingCert(ca, dnsNames, now);
    const caPem = normalizePemBundle(ca.cert);
    // Replicas still serving a certificate of a CA the API server trusts now must stay trusted
    // until their next pass switches them to the new CA: keep those CAs for the grace period.
    const carried = carry.trustedNow === undefined ? [] : validCertificates(splitPemCertificates(await carry.trustedNow()), now, caPem);
    const bundle = {
      caCert: ca.cert,
      caKey: ca.key,
      cert: serving.cert,
      key: serving.key,
      trustBundle: [caPem, ...carried].join(''),
      ...(carried.length > 0 ? { carriedUntil: new Date(now.getTime() + (carry.graceMs ?? 0)) } : {}),
    };
    return { action: 'generate', bundle, reason: existing === undefined ? 'no Secret yet' : existing.problem };
  }
  const carryEnded = existing.carriedUntil !== undefined && existing.carriedUntil.getTime() <= now.getTime();
  const problem = servingCertProblem(existing, dnsNames, now, renewBeforeDays);
  if (problem === undefined && !carryEnded) return { action: 'reuse', bundle: existing };
  if (problem === undefined) {
    // Everything but the active CA goes: a reset was asked for, so the old CAs stop being trusted.
    const { carriedUntil, ...kept } = existing;
    const bundle = { ...kept, trustBundle: normalizePemBundle(existing.caCert) };
    return { action: 'drop-carried', bundle, reason: `the grace of the CAs carried over the CA reset ended at ${carriedUntil?.toISOString()}` };
  }

  const activeCa = new X509Certificate(existing.caCert);
  const caKept = new Date(activeCa.validTo).getTime() > now.getTime() + renewBeforeDays * DAY_MS;
  // Names the current certificate already carries are kept (when it is this CA's), so replicas
  // configured with different names during an upgrade converge on one certificate naming them all
  // instead of replacing each other's.
  let names = [...dnsNames];
  try {
    const leaf = new X509Certificate(splitPemCertificates(existing.cert)[0] ?? '');
    if (leaf.verify(activeCa.publicKey)) names = [...new Set([...dnsNames, ...certificateNames(leaf)])];
  } catch {
    // An unparseable serving certificate contributes no names.
  }
  const ca = caKept ? { cert: existing.caCert, key: existing.caKey } : await generateCa(now);
  const serving = await generateServingCert(ca, names, now);
  // Older CAs stay in the trust bundle only while still valid (an expired one is dropped), and
  // carried ones only until their grace ends.
  const caPem = normalizePemBundle(ca.cert);
  const previous = carryEnded ? [] : validCertificates(splitPemCertificates(existing.trustBundle), now, caPem);
  const trustBundle = [caPem, ...previous].join('');
  const bundle = {
    caCert: ca.cert,
    caKey: ca.key,
    cert: serving.cert,
    key: serving.key,
    trustBundle,
    ...(existing.carriedUntil !== undefined && !carryEnded && previous.length > 0 ? { carriedUntil: existing.carriedUntil } : {}),
  };
  return { action: caKept ? 'renew' : 'rotate-ca', bundle, reason: caKept ? problem : 'the CA expires soon' };
}

/**
 * Returns the Secret to write: `base` (when replacing) with only the four keys and the carried-CAs
 * annotation set, or a new one.
 */
export function secretWithBundle(base: JsonObject | undefined, target: Pick<SecretTarget, 'namespace' | 'name'>, bundle: SecretBundle): JsonObject {
  const encode = (pem: string) => Buffer.from(pem, 'utf8').toString('base64');
  const data = {
    [CERT_FILES.cert]: encode(bundle.cert),
    [CERT_FILES.key]: encode(bundle.key),
    [CERT_FILES.caCert]: encode(bundle.trustBundle),
    [CERT_FILES.caKey]: encode(bundle.caKey),
  };
  const carried = bundle.carriedUntil === undefined ? {} : { [CARRIED_CAS_UNTIL_ANNOTATION]: bundle.carriedUntil.toISOString() };
  if (base !== undefined) {
    // Everything else (labels, other annotations, other keys, the resourceVersion) is kept as read.
    const copy = structuredClone(base);
    copy['data'] = { ...(isObject(base['data']) ? base['data'] : {}), ...data };
    const metadata = isObject(copy['metadata']) ? copy['metadata'] : {};
    const { [CARRIED_CAS_UNTIL_ANNOTATION]: _previous, ...annotations } = isObject(metadata['annotations']) ? metadata['annotations'] : {};
    const merged = { ...annotations, ...carried };
    if (Object.keys(merged).length > 0) metadata['annotations'] = merged;
    else delete metadata['annotations'];
    copy['metadata'] = metadata;
    return copy;
  }
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: target.name,
      namespace: target.namespace,
      labels: { ...SECRET_LABELS },
      ...(bundle.carriedUntil === undefined ? {} : { annotations: carried }),
    },
    type: 'kubernetes.io/tls',
    data,
  };
}

/**
 * Returns the bundle every replica serves from the Secret, creating it when missing and renewing it
 * when needed, so that concurrent replicas converge on one Secret (see the top of this file).
 */
export async function ensureSecretBundle(resources: KubeResources, target: SecretTarget, now: Date, carry: CarryOptions = {}): Promise<EnsuredSecret> {
  let conflicts = 0;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const secret = await resources.getSecret(target.namespace, target.name);
    const existing = secret === undefined ? undefined : readSecretBundle(secret);
    const plan = await planSecretBundle(existing, target.dnsNames, now, target.renewBeforeDays, carry);
    if (plan.action === 'reuse') {
      return { bundle: plan.bundle, action: conflicts > 0 ? 'adopted' : 'reused', conflicts };
    }
    try {
      if (secret === undefined) {
        await resources.createSecret(target.namespace, secretWithBundle(undefined, target, plan.bundle));
        return { bundle: plan.bundle, action: 'created', reason: plan.reason ?? 'no Secret yet', conflicts };
      }
      // The copy keeps the resourceVersion read above: the replace only succeeds if nobody wrote since.
      await resources.replaceSecret(target.namespace, target.name, secretWithBundle(secret, target, plan.bundle));
      const action =
        plan.action === 'renew' ? 'renewed' : plan.action === 'rotate-ca' ? 'rotated-ca' : plan.action === 'drop-carried' ? 'dropped-carried-cas' : 'regenerated';
      return { bundle: plan.bundle, action, ...(plan.reason === undefined ? {} : { reason: plan.reason }), conflicts };
    } catch (error) {
      // Another replica won the race: read what it wrote on the next attempt.
      if (!isAlreadyExists(error) && !isConflict(error)) throw error;
      conflicts++;
    }
  }
  throw new KubeApiError(409, 'Conflict', `Secret ${target.namespace}/${target.name}: still conflicting after ${MAX_ATTEMPTS} attempts`);
}
