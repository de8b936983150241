#!/usr/bin/env node
// Process entry point of the `envoy-injector` binary: runs the CLI and exits with its code.
import { main, reportError } from './cli.ts';

/**
 * Exits once standard output and standard error have handed everything to the OS. A pipe takes
 * writes asynchronously once its buffer (64 KiB) is full, and process.exit() would drop what is
 * still queued: `inject -f many.yaml | kubectl apply -f -` would get a truncated stream.
 */
function exitWhenFlushed(code: number): void {
  let pending = 2;
  const done = () => {
    pending -= 1;
    if (pending === 0) process.exit(code);
  };
  // An empty write's callback runs after every write queued before it.
  process.stdout.write('', done);
  process.stderr.write('', done);
}

main(process.argv.slice(2)).then(
  (code) => exitWhenFlushed(code),
  (error: unknown) => exitWhenFlushed(reportError(error)),
);
