// The node's CNI configuration as the node agent edits it. Pure: file names and text in, the file
// to change and its new text out. The runtime uses the first network configuration of its conf dir
// in lexical order (libcni's rule, which containerd and CRI-O follow); the agent appends its plugin
// to that one's `plugins`, so it runs after the primary CNI, and removes exactly its own entry again.
import { PLUGIN_TYPE, POD_ANNOTATIONS_CAPABILITY } from './protocol.ts';

/** Extensions libcni reads as network configurations. */
const CONFIG_EXTENSIONS = ['.conflist', '.conf', '.json'];

/** Returns the file the runtime uses: the first configuration in lexical order (no hidden files). */
export function primaryConfig(files: readonly string[]): string | undefined {
  return [...files]
    .filter((f) => !f.startsWith('.') && CONFIG_EXTENSIONS.some((ext) => f.endsWith(ext)))
    .sort()[0];
}

/** What the agent's entry in the conflist says. */
export interface PluginEntryOptions {
  /** The kubeconfig path as the node (the runtime running the plugin) sees it. */
  readonly kubeconfig: string;
  readonly excludedNamespaces: readonly string[];
}

/** Returns the agent's entry: its type, kubeconfig, excluded namespaces, and the annotations capability. */
export function pluginEntry(options: PluginEntryOptions): Record<string, unknown> {
  return {
    type: PLUGIN_TYPE,
    kubeconfig: options.kubeconfig,
    excludedNamespaces: [...options.excludedNamespaces],
    // containerd and CRI-O then pass the pod's annotations: most pods need no API request.
    capabilities: { [POD_ANNOTATIONS_CAPABILITY]: true },
  };
}

/** An edit of the configuration: the new text, or why the file cannot be edited. */
export type ConflistEdit =
  | { readonly ok: true; readonly changed: boolean; readonly text: string }
  | { readonly ok: false; readonly error: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isOurs = (plugin: unknown): boolean => isObject(plugin) && plugin['type'] === PLUGIN_TYPE;
const format = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

function parseList(name: string, text: string): { ok: true; list: Record<string, unknown> } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `${name} is not JSON (${(error as Error).message})` };
  }
  if (!isObject(raw)) return { ok: false, error: `${name} is not a JSON object` };
  if (!Array.isArray(raw['plugins'])) {
    // A single-plugin .conf: the same network as a conflist of one plugin (libcni's own conversion).
    if (typeof raw['type'] !== 'string') return { ok: false, error: `${name} has neither "plugins" nor a plugin "type"` };
    const { cniVersion, name: network, ...plugin } = raw;
    return { ok: true, list: { cniVersion, name: network, plugins: [plugin] } };
  }
  return { ok: true, list: raw };
}

/**
 * Adds (or updates) the agent's entry as the last plugin of the network configuration `name`;
 * unchanged text when it already is exactly that. A single-plugin `.conf` becomes a conflist (the
 * caller writes it under a `.conflist` name).
 */
export function addPlugin(name: string, text: string, entry: Record<string, unknown>): ConflistEdit {
  const parsed = parseList(name, text);
  if (!parsed.ok) return parsed;
  const plugins = (parsed.list['plugins'] as unknown[]).filter((p) => !isOurs(p));
  const list = { ...parsed.list, plugins: [...plugins, entry] };
  const current = parsed.list['plugins'] as unknown[];
  const already = JSON.stringify(current) === JSON.stringify(list.plugins) && Array.isArray(JSON.parse(text)['plugins']);
  return { ok: true, changed: !already, text: already ? text : format(list) };
}

/** Removes the agent's entry (every copy); unchanged text when there is none. */
export function removePlugin(name: string, text: string): ConflistEdit {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `${name} is not JSON (${(error as Error).message})` };
  }
  if (!isObject(raw) || !Array.isArray(raw['plugins']) || !raw['plugins'].some(isOurs)) return { ok: true, changed: false, text };
  return { ok: true, changed: true, text: format({ ...raw, plugins: raw['plugins'].filter((p) => !isOurs(p)) }) };
}

/** Whether the configuration's text holds the agent's entry. */
export function holdsPlugin(text: string): boolean {
  try {
    const raw: unknown = JSON.parse(text);
    return isObject(raw) && Array.isArray(raw['plugins']) && raw['plugins'].some(isOurs);
  } catch {
    return false;
  }
}
