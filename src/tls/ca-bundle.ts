// Keeps the caBundle of every webhook of the injector's MutatingWebhookConfiguration equal to the
// CA bundle the replicas serve under: read, modify only `clientConfig.caBundle`, replace on the
// resourceVersion read, and on 409 Conflict read again — so an edit someone else made in between
// is never overwritten — writing only when something differs, so replicas never fight.
import { Buffer } from 'node:buffer';
import type { Json, JsonObject } from '../core/types.ts';
import { bundleTrusts, normalizePemBundle } from './certificates.ts';
import { isConflict, KubeApiError } from '../kube/api-error.ts';
import type { KubeResources } from '../kube/resources.ts';

/** The caBundle one webhook entry carries, decoded. */
export interface WebhookCaBundle {
  readonly name: string;
  /** The PEM text of the caBundle, or undefined when it is empty or not base64 PEM. */
  readonly caBundle: string | undefined;
}

/** What a reconciliation found and did. */
export interface CaBundleReconciliation {
  /** `in-sync`: nothing to write; `updated`: written; `not-found`: no such MutatingWebhookConfiguration. */
  readonly outcome: 'in-sync' | 'updated' | 'not-found';
  /** Each webhook's caBundle after the reconciliation (empty when not found). */
  readonly webhooks: readonly WebhookCaBundle[];
  /** How many times a concurrent change made the replace fail with 409 and start over. */
  readonly conflicts: number;
}

/** Replace attempts before giving up until the next resync (each retry reads the object again). */
const MAX_ATTEMPTS = 8;

const isObject = (value: Json | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

function webhooksOf(configuration: JsonObject): JsonObject[] {
  const webhooks = configuration['webhooks'];
  return Array.isArray(webhooks) ? webhooks.filter(isObject) : [];
}

/** Decodes a caBundle field: base64 of PEM certificates. */
function decodeCaBundle(value: Json | undefined): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const pem = normalizePemBundle(Buffer.from(value, 'base64').toString('utf8'));
  return pem === '' ? undefined : pem;
}

/** Returns the decoded caBundle of every webhook entry of a MutatingWebhookConfiguration. */
export function webhookCaBundles(configuration: JsonObject): WebhookCaBundle[] {
  return webhooksOf(configuration).map((webhook) => {
    const clientConfig = webhook['clientConfig'];
    return {
      name: typeof webhook['name'] === 'string' ? webhook['name'] : '',
      caBundle: decodeCaBundle(isObject(clientConfig) ? clientConfig['caBundle'] : undefined),
    };
  });
}

/** Whether every webhook entry has at least one entry and a caBundle that trusts the serving chain. */
export function caBundlesTrust(webhooks: readonly WebhookCaBundle[], servingChain: string, now: Date = new Date()): boolean {
  return webhooks.length > 0 && webhooks.every((w) => w.caBundle !== undefined && bundleTrusts(w.caBundle, servingChain, now));
}

/**
 * Returns a copy of `configuration` whose every webhook carries `trustBundle` (PEM) as its caBundle,
 * or undefined when every webhook already carries exactly that bundle. Nothing else is touched.
 */
export function withCaBundle(configuration: JsonObject, trustBundle: string): JsonObject | undefined {
  const desired = normalizePemBundle(trustBundle);
  const current = webhookCaBundles(configuration);
  if (current.length > 0 && current.every((w) => w.caBundle === desired)) return undefined;
  const encoded = Buffer.from(desired, 'utf8').toString('base64');
  const copy = structuredClone(configuration);
  for (const webhook of webhooksOf(copy)) {
    const clientConfig = isObject(webhook['clientConfig']) ? webhook['clientConfig'] : {};
    webhook['clientConfig'] = { ...clientConfig, caBundle: encoded };
  }
  return copy;
}

/**
 * Makes every webhook of the MutatingWebhookConfiguration `name` carry `trustBundle` (PEM), with
 * read-modify-replace on the resourceVersion and a retry on each 409 Conflict.
 */
export async function reconcileCaBundle(resources: KubeResources, name: string, trustBundle: string): Promise<CaBundleReconciliation> {
  let conflicts = 0;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const current = await resources.getWebhookConfiguration(name);
    if (current === undefined) return { outcome: 'not-found', webhooks: [], conflicts };
    const updated = withCaBundle(current, trustBundle);
    if (updated === undefined) return { outcome: 'in-sync', webhooks: webhookCaBundles(current), conflicts };
    if (webhooksOf(updated).length === 0) return { outcome: 'in-sync', webhooks: [], conflicts };
    try {
      // `updated` still holds the resourceVersion that was read: the replace is conditional on it.
      const written = await resources.replaceWebhookConfiguration(name, updated);
      return { outcome: 'updated', webhooks: webhookCaBundles(written), conflicts };
    } catch (error) {
      if (!isConflict(error)) throw error;
      conflicts++;
    }
  }
  throw new KubeApiError(409, 'Conflict', `updating the caBundle of MutatingWebhookConfiguration ${name}: still conflicting after ${MAX_ATTEMPTS} attempts`);
}
