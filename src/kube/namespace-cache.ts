// The webhook's view of Namespaces (SPEC.md §4b): their `envoy-injector.io/` annotations, the
// defaults of their pods, from one list and a watch — never an API call per admission. Only each
// namespace's name and those annotations are kept, so clusters with thousands of namespaces cost
// little memory. A failed or expired watch (410 Gone) is restarted with a fresh list after a
// backoff; meanwhile the last good view keeps serving. A namespace not in the view yet (created a
// moment ago, its watch event still on the way) is read once, bounded, by `defaultsFor`.
import type { Logger } from 'pino';
import { DOMAIN } from '../constants.ts';
import type { JsonObject } from '../core/types.ts';

/** How long a cache miss may wait for its one read of the namespace. */
export const NAMESPACE_GET_TIMEOUT_MS = 2_000;
/** The backoff between relists after a failure: from the first to the last, doubling. */
export const RELIST_BACKOFF_MS = { first: 1_000, max: 30_000 } as const;

/** One page of a namespace list, as the API server answers it. */
export interface NamespaceList {
  readonly items: readonly JsonObject[];
  readonly resourceVersion: string;
}

/** What the watch reports: an event, or the end of the stream (with the error, if any). */
export type WatchEvent =
  | { readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; readonly object: JsonObject }
  | { readonly type: 'ERROR'; readonly object: JsonObject };

/** The API calls the cache makes (the real ones in createNamespaceApi; tests give their own). */
export interface NamespaceApi {
  /** Lists every namespace (all pages), with the list's resourceVersion to watch from. */
  list(): Promise<NamespaceList>;
  /** Watches from `resourceVersion`; `done` is called once when the stream ends. Returns a stop function. */
  watch(resourceVersion: string, onEvent: (event: WatchEvent) => void, done: (error?: unknown) => void): Promise<() => void>;
  /** Reads one namespace, or undefined when it does not exist; rejects after `timeoutMs`. */
  get(name: string, timeoutMs: number): Promise<JsonObject | undefined>;
}

/** What the cache knows of a namespace's defaults for one admission. */
export type NamespaceDefaultsLookup =
  | { readonly known: true; readonly annotations: Readonly<Record<string, string>> }
  | { readonly known: false; readonly reason: string };

/** Why the view was (re)filled, for the resyncs metric. */
export type ResyncReason = 'start' | 'expired' | 'error';
export const RESYNC_REASONS: readonly ResyncReason[] = ['start', 'expired', 'error'];

export interface NamespaceCacheOptions {
  readonly api: NamespaceApi;
  readonly logger: Logger;
  /** The clock (tests); Date.now by default. */
  readonly now?: () => number;
  /** Called on every relist, with why. */
  readonly onResync?: (reason: ResyncReason) => void;
  readonly backoff?: { readonly first: number; readonly max: number };
}

const PREFIX = `${DOMAIN}/`;

/** Returns the namespace's name and its annotations under the domain (all the cache keeps). */
export function namespaceEntry(object: JsonObject): { name: string; annotations: Readonly<Record<string, string>> } | undefined {
  const metadata = object['metadata'];
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) return undefined;
  const name = metadata['name'];
  if (typeof name !== 'string' || name === '') return undefined;
  const annotations: Record<string, string> = {};
  const given = metadata['annotations'];
  if (typeof given === 'object' && given !== null && !Array.isArray(given)) {
    for (const [key, value] of Object.entries(given)) if (key.startsWith(PREFIX) && typeof value === 'string') annotations[key] = value;
  }
  return { name, annotations: Object.freeze(annotations) };
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});
const resourceVersionOf = (object: JsonObject): string | undefined => {
  const metadata = object['metadata'] as JsonObject | undefined;
  const rv = metadata?.['resourceVersion'];
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
};
const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** The namespace watch cache. */
export class NamespaceCache {
  readonly #api: NamespaceApi;
  readonly #logger: Logger;
  readonly #now: () => number;
  #onResync: ((reason: ResyncReason) => void) | undefined;
  readonly #backoff: { readonly first: number; readonly max: number };
  /** Namespaces with no annotation of ours share one empty object. */
  #entries = new Map<string, Readonly<Record<string, string>>>();
  #synced = false;
  #lastHeard: number | undefined;
  #resourceVersion = '';
  #stopWatch: (() => void) | undefined;
  #timer: NodeJS.Timeout | undefined;
  #delay: number;
  #stopped = false;
  /** The problem last logged, so each is logged once (and its end once). */
  #problem: string | undefined;
  /** Reads in flight for cache misses, one per namespace. */
  readonly #reads = new Map<string, Promise<NamespaceDefaultsLookup>>();

  constructor(options: NamespaceCacheOptions) {
    this.#api = options.api;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#onResync = options.onResync;
    this.#backoff = options.backoff ?? RELIST_BACKOFF_MS;
    this.#delay = this.#backoff.first;
  }

  /** Calls `listener` on every relist (the metrics count them). */
  onResync(listener: (reason: ResyncReason) => void): void {
    const previous = this.#onResync;
    this.#onResync = (reason) => {
      previous?.(reason);
      listener(reason);
    };
  }

  /** Starts listing and watching; returns at once (readiness says when the view is filled). */
  start(): void {
    this.#stopped = false;
    void this.#relist('start');
  }

  /** Stops the watch and any pending relist. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#stopWatch?.();
    this.#stopWatch = undefined;
  }

  /** Whether the view has been filled at least once. */
  synced(): boolean {
    return this.#synced;
  }

  /** Not ready until the first list succeeded. */
  readiness(): { readonly ready: boolean; readonly reason?: string } {
    if (this.#synced) return { ready: true };
    return { ready: false, reason: `namespace cache not synced yet${this.#problem === undefined ? '' : `: ${this.#problem}`}` };
  }

  /** Seconds since the API server was last heard from (a list, or a watch event), or undefined before. */
  ageSeconds(): number | undefined {
    return this.#lastHeard === undefined ? undefined : (this.#now() - this.#lastHeard) / 1000;
  }

  /** Number of namespaces in the view. */
  size(): number {
    return this.#entries.size;
  }

  /** The namespace's annotations of ours from the view, or undefined when it is not in it. */
  get(name: string): Readonly<Record<string, string>> | undefined {
    return this.#entries.get(name);
  }

  /**
   * The defaults of namespace `name`: from the view; on a miss, from one read bounded to
   * NAMESPACE_GET_TIMEOUT_MS (shared by concurrent admissions of that namespace), which also fills
   * the view; unknown when that read fails.
   */
  defaultsFor(name: string): NamespaceDefaultsLookup | Promise<NamespaceDefaultsLookup> {
    const cached = this.#entries.get(name);
    if (cached !== undefined) return { known: true, annotations: cached };
    let read = this.#reads.get(name);
    if (read === undefined) {
      read = this.#readOne(name).finally(() => this.#reads.delete(name));
      this.#reads.set(name, read);
    }
    return read;
  }

  async #readOne(name: string): Promise<NamespaceDefaultsLookup> {
    try {
      const object = await this.#api.get(name, NAMESPACE_GET_TIMEOUT_MS);
      // Gone already (a pod racing its namespace's deletion): there are no defaults to apply.
      if (object === undefined) return { known: true, annotations: EMPTY };
      const entry = namespaceEntry(object);
      if (entry === undefined) return { known: false, reason: 'the API server answered with an unreadable Namespace' };
      // The watch will deliver it too; until then the next pod of that namespace needs no read.
      if (!this.#entries.has(entry.name)) this.#entries.set(entry.name, this.#intern(entry.annotations));
      return { known: true, annotations: this.#entries.get(entry.name) ?? EMPTY };
    } catch (error) {
      this.#logger.warn({ namespace: name, err: describe(error) }, 'namespace not in the cache and could not be read: its pods get the config defaults');
      return { known: false, reason: describe(error) };
    }
  }

  #intern(annotations: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
    return Object.keys(annotations).length === 0 ? EMPTY : annotations;
  }

  #report(problem: string, detail: Record<string, unknown>): void {
    if (this.#problem === problem) return;
    this.#problem = problem;
    this.#logger.warn({ ...detail, retryInMs: this.#delay }, `namespace cache: ${problem}; serving from the last good view`);
  }

  #recovered(): void {
    if (this.#problem === undefined) return;
    this.#logger.info({ namespaces: this.#entries.size }, 'namespace cache: recovered');
    this.#problem = undefined;
  }

  async #relist(reason: ResyncReason): Promise<void> {
    if (this.#stopped) return;
    this.#stopWatch?.();
    this.#stopWatch = undefined;
    this.#onResync?.(reason);
    let list: NamespaceList;
    try {
      list = await this.#api.list();
    } catch (error) {
      this.#report('listing namespaces failed', { err: describe(error) });
      this.#retryLater();
      return;
    }
    if (this.#stopped) return;
    const entries = new Map<string, Readonly<Record<string, string>>>();
    for (const item of list.items) {
      const entry = namespaceEntry(item);
      if (entry !== undefined) entries.set(entry.name, this.#intern(entry.annotations));
    }
    // Swapped whole: an admission never sees half a list.
    this.#entries = entries;
    this.#resourceVersion = list.resourceVersion;
    this.#lastHeard = this.#now();
    if (!this.#synced) this.#logger.info({ namespaces: entries.size }, 'namespace cache synced');
    this.#synced = true;
    this.#delay = this.#backoff.first;
    this.#recovered();
    await this.#watch();
  }

  #retryLater(reason: ResyncReason = 'error'): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#relist(reason), this.#delay);
    this.#timer.unref();
    this.#delay = Math.min(this.#delay * 2, this.#backoff.max);
  }

  async #watch(): Promise<void> {
    if (this.#stopped) return;
    // Set once this watch is over, whoever ended it: its late callbacks are ignored.
    let ended = false;
    let stop: (() => void) | undefined;
    const end = () => {
      ended = true;
      stop?.();
      if (this.#stopWatch === endThis) this.#stopWatch = undefined;
    };
    const endThis = end;
    const started = this.#now();
    const done = (error?: unknown) => {
      if (ended) return;
      end();
      if (this.#stopped) return;
      if (error === undefined || error === null) {
        this.#lastHeard = this.#now();
        // The API server ends every watch after a while: carry on from where it was — unless it
        // ended at once, which is no watch at all (then back off as for an error).
        if (this.#now() - started >= 1_000) void this.#watch();
        else {
          this.#report('the namespace watch keeps ending at once', {});
          this.#retryLater();
        }
        return;
      }
      this.#report('the namespace watch failed', { err: describe(error) });
      this.#retryLater();
    };
    const onEvent = (event: WatchEvent) => {
      if (ended) return;
      this.#lastHeard = this.#now();
      if (event.type === 'ERROR') {
        const status = event.object;
        end();
        if (status['code'] === 410) {
          // The resourceVersion is too old to resume from: list again, at once.
          this.#logger.info('namespace watch expired (410 Gone): listing again');
          void this.#relist('expired');
        } else {
          this.#report('the namespace watch reported an error', { status: status['message'] ?? status['reason'] ?? status['code'] });
          this.#retryLater();
        }
        return;
      }
      const rv = resourceVersionOf(event.object);
      if (rv !== undefined) this.#resourceVersion = rv;
      if (event.type === 'BOOKMARK') return;
      const entry = namespaceEntry(event.object);
      if (entry === undefined) return;
      if (event.type === 'DELETED') this.#entries.delete(entry.name);
      else this.#entries.set(entry.name, this.#intern(entry.annotations));
      this.#recovered();
    };
    this.#stopWatch = endThis;
    try {
      stop = await this.#api.watch(this.#resourceVersion, onEvent, done);
      if (ended) stop();
      // The API server accepted the watch: the view is as current as its stream.
      else this.#lastHeard = this.#now();
    } catch (error) {
      done(error);
    }
  }
}

/** Seconds after which the API server ends each watch (then resumed): a dead connection is noticed. */
const WATCH_TIMEOUT_SECONDS = 300;

/** Returns the NamespaceApi of a cluster: paged lists, a watch with bookmarks, bounded reads. */
export async function createNamespaceApi(kc: import('@kubernetes/client-node').KubeConfig): Promise<NamespaceApi> {
  const [{ CoreV1Api, Watch }, { callRaw }, { isNotFound }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('./raw.ts'),
    import('./api-error.ts'),
  ]);
  const core = kc.makeApiClient(CoreV1Api);
  const watcher = new Watch(kc);
  return {
    async list() {
      const items: JsonObject[] = [];
      let cont: string | undefined;
      let resourceVersion = '';
      do {
        const page = await callRaw('listing namespaces', (o) =>
          core.listNamespace({ limit: 500, ...(cont === undefined ? {} : { _continue: cont }) }, o),
        );
        if (!Array.isArray(page['items'])) throw new Error('listing namespaces: the API server answered without items');
        for (const item of page['items']) if (typeof item === 'object' && item !== null && !Array.isArray(item)) items.push(item);
        const metadata = page['metadata'] as { continue?: unknown; resourceVersion?: unknown } | undefined;
        if (typeof metadata?.resourceVersion === 'string') resourceVersion = metadata.resourceVersion;
        cont = typeof metadata?.continue === 'string' && metadata.continue !== '' ? metadata.continue : undefined;
      } while (cont !== undefined);
      return { items, resourceVersion };
    },
    async watch(resourceVersion, onEvent, done) {
      const controller = await watcher.watch(
        '/api/v1/namespaces',
        { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT_SECONDS },
        (type, object) => {
          if (typeof object === 'object' && object !== null) onEvent({ type, object } as WatchEvent);
        },
        (error) => done(error ?? undefined),
      );
      return () => controller.abort();
    },
    async get(name, timeoutMs) {
      try {
        return await callRaw(`reading Namespace ${name}`, (o) => core.readNamespace({ name }, o), undefined, timeoutMs);
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw error;
      }
    },
  };
}
