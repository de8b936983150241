// Reads a bootstrap fragment's text (the `envoy.yaml` of a ConfigMap, or `bootstrap --override
// FILE`): YAML 1.2, of which JSON is a part, as Envoy reads `--config-yaml`. Pure.
import { parseDocument } from 'yaml';
import { BootstrapOverrideError } from './bootstrap-override.ts';

/** Returns the fragment `text` holds; throws BootstrapOverrideError naming `source` and the first YAML error. */
export function parseFragmentText(text: string, source: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const error = doc.errors[0];
  if (error !== undefined) {
    const where = error.linePos?.[0] === undefined ? '' : ` (line ${error.linePos[0].line})`;
    throw new BootstrapOverrideError([`${source}: not valid YAML${where}: ${error.message.split('\n')[0]}`]);
  }
  // An empty file is an empty fragment.
  return doc.contents === null ? {} : doc.toJS({ maxAliasCount: 100 });
}
