#!/usr/bin/env node
// Process entry point of the `envoy-injector` binary: runs the CLI and exits with its code.
import { main, reportError } from './cli.ts';

/** Streams whose reader has gone (EPIPE): nothing written to them can arrive any more. */
const broken = new Set<NodeJS.WriteStream>();
const STREAMS: readonly NodeJS.WriteStream[] = [process.stdout, process.stderr];
for (const stream of STREAMS) {
  // Without a listener an EPIPE would be an uncaught exception (a stack trace, or, in serve, a
  // replica reporting itself unhealthy); any other error is reported as one line where possible.
  stream.on('error', (error: NodeJS.ErrnoException) => {
    broken.add(stream);
    if (error.code !== 'EPIPE' && stream === process.stdout && !broken.has(process.stderr)) {
      process.stderr.write(`envoy-injector: cannot write to standard output: ${error.message}\n`);
    }
  });
}

/**
 * Exits once standard output and standard error have handed everything to the OS. A pipe takes
 * writes asynchronously once its buffer (64 KiB) is full, and process.exit() would drop what is
 * still queued: `inject -f many.yaml | kubectl apply -f -` would get a truncated stream. A stream
 * whose reader is gone (`| head -2`) is not waited for: its queued writes can never complete.
 */
function exitWhenFlushed(code: number): void {
  const waiting = new Set(STREAMS.filter((stream) => !broken.has(stream) && !stream.destroyed));
  const done = (stream: NodeJS.WriteStream) => {
    waiting.delete(stream);
    if (waiting.size === 0) process.exit(code);
  };
  if (waiting.size === 0) process.exit(code);
  for (const stream of [...waiting]) {
    // An empty write's callback runs after every write queued before it; a failing stream calls
    // it with the error, and closes.
    stream.write('', () => done(stream));
    stream.once('error', () => done(stream));
    stream.once('close', () => done(stream));
  }
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (error: unknown) => exitWhenFlushed(reportError(error)),
);
