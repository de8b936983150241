// The injector's version, read once from package.json (one directory above both src/ and dist/).
import { readFileSync } from 'node:fs';

const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Version of envoy-injector, from package.json. */
export const VERSION: string = packageJson.version;
