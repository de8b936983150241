// The part of autocannon's API the benchmark uses (the package ships no TypeScript types).
declare module 'autocannon' {
  export interface Histogram {
    readonly average: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
    readonly total: number;
  }
  export interface Options {
    url: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    connections?: number;
    pipelining?: number;
    duration?: number;
    /** Number of requests to send, instead of a duration. */
    amount?: number;
    timeout?: number;
    servername?: string;
  }
  export interface Result {
    readonly requests: Histogram;
    readonly latency: Histogram;
    readonly duration: number;
    readonly errors: number;
    readonly timeouts: number;
    readonly non2xx: number;
    readonly '2xx': number;
  }
  /** A running benchmark: awaitable for its result, and emitting one `response` per answer. */
  export interface Instance extends PromiseLike<Result> {
    on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTimeMs: number) => void): this;
    /** Stops sending; the result then holds what was answered so far. */
    stop(): void;
  }
  function autocannon(options: Options): Instance;
  export default autocannon;
}
