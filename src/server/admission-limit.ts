// The bounds that keep clients from holding what the API server's admissions need (SPEC.md §6):
//
// - Slots (server.maxConcurrentAdmissions): an admission takes one once its body is complete and
//   parsed, and gives it back once answered. A client that is slow to send its body holds none, so
//   slow or stalled clients cannot fill them.
// - A bound per peer (server.maxRequestsPerPeer): requests in progress from one remote address,
//   from their headers until they are answered. The API server sends each body at once, so its
//   requests are in progress for microseconds; a client that opens many and sends slowly meets
//   this bound and gets 503 at once, without its body being read, while other peers are served.
// - A body deadline (server.bodyTimeoutMs, in app.ts): a body not complete that long after its
//   headers is answered 408 and its connection closed.
//
// Beyond a bound the webhook answers 503 with Retry-After at once, so overload costs neither
// memory (bodies of up to server.bodyLimitBytes each) nor waiting.

/** A counting bound on work in progress; `tryAcquire` never waits. */
export interface AdmissionLimit {
  /** Takes a slot and returns the function that gives it back (idempotent), or undefined when full. */
  tryAcquire(): (() => void) | undefined;
  /** Slots taken right now. */
  readonly inFlight: number;
  readonly max: number;
}

/** Returns a release function that runs `release` once, however often it is called. */
function once(release: () => void): () => void {
  let released = false;
  // Several events may signal the end of one request (response sent, socket closed): count it once.
  return () => {
    if (released) return;
    released = true;
    release();
  };
}

/** Returns a bound of `max` concurrent admissions. */
export function createAdmissionLimit(max: number): AdmissionLimit {
  let inFlight = 0;
  return {
    tryAcquire() {
      if (inFlight >= max) return undefined;
      inFlight++;
      return once(() => {
        inFlight--;
      });
    },
    get inFlight() {
      return inFlight;
    },
    max,
  };
}

/** A bound on requests in progress per remote address; `tryAcquire` never waits. */
export interface PeerLimit {
  /** Takes a place for `peer` and returns the function that gives it back (idempotent), or undefined when the peer is at its bound. */
  tryAcquire(peer: string): (() => void) | undefined;
  /** Requests in progress from `peer` right now. */
  inProgress(peer: string): number;
  /** Peers with requests in progress (a peer with none is forgotten, so the map stays small). */
  readonly peers: number;
  readonly max: number;
}

/** Returns a bound of `max` requests in progress per peer. */
export function createPeerLimit(max: number): PeerLimit {
  const counts = new Map<string, number>();
  return {
    tryAcquire(peer) {
      const count = counts.get(peer) ?? 0;
      if (count >= max) return undefined;
      counts.set(peer, count + 1);
      return once(() => {
        const left = (counts.get(peer) ?? 1) - 1;
        if (left <= 0) counts.delete(peer);
        else counts.set(peer, left);
      });
    },
    inProgress: (peer) => counts.get(peer) ?? 0,
    get peers() {
      return counts.size;
    },
    max,
  };
}

/**
 * Returns the address a request came from, as the per-peer bound counts it: an IPv4 client of a
 * dual-stack listener (`::ffff:10.0.0.1`) is the same peer as `10.0.0.1`.
 */
export function peerOf(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined || remoteAddress === '') return 'unknown';
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
}

/** Why a request was refused before it was an admission (the `reason` label of the refusals metric). */
export type RefusalReason = 'overloaded' | 'peer-limit' | 'body-timeout';

/** Seconds a client is told to wait before retrying an admission refused for overload. */
export const OVERLOAD_RETRY_AFTER_SECONDS = 1;
