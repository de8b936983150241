// `npm run schema`: regenerates src/core/envoy-schema.ts from Envoy's v3 protos (src/envoy/merge-schema.ts).
import { writeFileSync } from 'node:fs';
import { buildMergeSchema, renderSchemaModule } from '../src/envoy/merge-schema.ts';

const target = new URL('../src/core/envoy-schema.ts', import.meta.url);
const schema = buildMergeSchema();
writeFileSync(target, renderSchemaModule(schema));
process.stdout.write(`wrote ${target.pathname}: ${Object.keys(schema.messages).length} messages\n`);
