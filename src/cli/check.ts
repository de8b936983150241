// Placeholder: implemented by its own issue.

/** Runs the command; resolves to the exit code. */
export async function run(_args: string[]): Promise<number> {
  process.stderr.write('envoy-injector: this command is not implemented yet\n');
  return 1;
}
