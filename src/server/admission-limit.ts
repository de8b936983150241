// The bound on concurrent admissions (server.maxConcurrentAdmissions): a counter of slots that a
// request takes when it arrives and gives back once it is answered or its connection is gone.
// Beyond the bound the webhook answers 503 with Retry-After at once, without reading the body, so
// overload costs neither memory (bodies of up to server.bodyLimitBytes each) nor waiting.

/** A counting bound on work in progress; `tryAcquire` never waits. */
export interface AdmissionLimit {
  /** Takes a slot and returns the function that gives it back (idempotent), or undefined when full. */
  tryAcquire(): (() => void) | undefined;
  /** Slots taken right now. */
  readonly inFlight: number;
  readonly max: number;
}

/** Returns a bound of `max` concurrent admissions. */
export function createAdmissionLimit(max: number): AdmissionLimit {
  let inFlight = 0;
  return {
    tryAcquire() {
      if (inFlight >= max) return undefined;
      inFlight++;
      let released = false;
      // Several events may signal the end of one request (response sent, socket closed): count it once.
      return () => {
        if (released) return;
        released = true;
        inFlight--;
      };
    },
    get inFlight() {
      return inFlight;
    },
    max,
  };
}

/** Seconds a client is told to wait before retrying an admission refused for overload. */
export const OVERLOAD_RETRY_AFTER_SECONDS = 1;
