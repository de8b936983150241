// Lenses: a typed place in an object (read a value there, write one into an object being built), so
// that each setting says once, checked by the compiler, where its value lives.

/** An object of type S under construction: every level writable, and possibly still missing. */
export type Draft<S> = S extends readonly unknown[]
  ? S
  : S extends object
    ? { -readonly [K in keyof S]?: Draft<S[K]> }
    : S;

/** A place holding a T in objects of type S. */
export interface Lens<S, T> {
  /** Reads the value from a complete object. */
  readonly get: (source: S) => T;
  /** Writes the value into an object being built, creating the levels above it. */
  readonly set: (target: Draft<S>, value: T) => void;
}

/** A lens that is a plain property path, which it also names (`proxy.image`). */
export interface PathLens<S, T> extends Lens<S, T> {
  readonly path: readonly string[];
}

type Level = Record<string, unknown>;

function lensAt<S, T>(path: readonly string[]): PathLens<S, T> {
  const parents = path.slice(0, -1);
  const last = path[path.length - 1] as string;
  return {
    path,
    get: (source) => {
      // A loop, not reduce: lenses are read on every admission.
      let node = source as unknown;
      for (const key of path) node = (node as Level)[key];
      return node as T;
    },
    set: (target, value) => {
      let node = target as Level;
      for (const key of parents) {
        node[key] ??= {};
        node = node[key] as Level;
      }
      // Never leave `undefined` in what is built: an unset optional value is an absent key. The
      // levels above are still created, as the config has always had them (`requests: {}`).
      if (value === undefined) delete node[last];
      else node[last] = value;
    },
  };
}

/**
 * Returns the path-lens builder for objects of type S: `at('proxy', 'image')` is the place of
 * `s.proxy.image`, typed as that property (misspelt keys do not compile).
 */
export function pathLenses<S>() {
  function at<A extends keyof S & string>(a: A): PathLens<S, S[A]>;
  function at<A extends keyof S & string, B extends keyof S[A] & string>(a: A, b: B): PathLens<S, S[A][B]>;
  function at<A extends keyof S & string, B extends keyof S[A] & string, C extends keyof S[A][B] & string>(
    a: A,
    b: B,
    c: C,
  ): PathLens<S, S[A][B][C]>;
  function at<
    A extends keyof S & string,
    B extends keyof S[A] & string,
    C extends keyof S[A][B] & string,
    D extends keyof S[A][B][C] & string,
  >(a: A, b: B, c: C, d: D): PathLens<S, S[A][B][C][D]>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each overload above types it
  function at(...path: string[]): PathLens<S, any> {
    return lensAt(path);
  }
  return at;
}
