// The injector's errors: each has a stable code; the transport maps them to responses in one place
// (server/errors.ts) and the CLI prints their message as one line.

/** Base of every error the injector raises on purpose. */
export class InjectorError extends Error {
  /** Stable machine-readable code, e.g. `invalid-review`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A request that is not a decodable AdmissionReview (HTTP 400). */
export class ReviewDecodeError extends InjectorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('invalid-review', message, options);
  }
}

/** A bad configuration file or value; names the offending key. */
export class ConfigError extends InjectorError {
  readonly key: string;

  constructor(key: string, message: string, options?: { cause?: unknown }) {
    super('invalid-config', message, options);
    this.key = key;
  }
}

/** Bad input to a CLI command (a file that cannot be read or parsed, a bad flag). */
export class UsageError extends InjectorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('usage', message, options);
  }
}

/**
 * A command's negative outcome, reported as its result rather than as a failure to run (exit 1):
 * `bootstrap` asked for a pod that would not be injected, `uninject` asked to remove what it cannot
 * tell apart from the pod's own.
 */
export class RefusedError extends InjectorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('refused', message, options);
  }
}
