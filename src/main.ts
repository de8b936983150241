#!/usr/bin/env node
// Process entry point of the `envoy-injector` binary: runs the CLI and exits with its code.
import { main, reportError } from './cli.ts';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => process.exit(reportError(error)),
);
