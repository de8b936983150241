// The README stays true: its tables of annotations, config keys, init-iptables flags and check
// findings are generated from their declarations (`npm run docs`) and must match them; every reason
// and warning code is documented.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { updateReadme } from '../scripts/docs.ts';
import { FINDINGS } from '../src/check/findings.ts';
import { REASONS, WARNINGS } from '../src/core/reasons.ts';
import { SETTINGS, annotationNames } from '../src/core/settings.ts';
import { INJECT_ANNOTATION, STATUS_ANNOTATION } from '../src/constants.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

test("the README's generated tables match the settings and findings tables (run npm run docs after a change)", () => {
  assert.equal(updateReadme(readme), readme, 'README.md is out of date: run npm run docs and review the diff');
});

test('every config key, env var, annotation and finding code is in the README', () => {
  for (const { key, env } of SETTINGS) {
    assert.ok(readme.includes(`\`${key}\``), `README documents ${key}`);
    assert.ok(readme.includes(`\`${env}\``), `README documents ${env}`);
  }
  for (const name of annotationNames()) assert.ok(readme.includes(`\`${name}\``), `README documents ${name}`);
  for (const annotation of [INJECT_ANNOTATION, STATUS_ANNOTATION]) assert.ok(readme.includes(annotation), `README documents ${annotation}`);
  for (const code of Object.keys(FINDINGS)) assert.ok(readme.includes(`\`${code}\``), `README documents ${code}`);
});

test('every reason code and warning code is in the README', () => {
  for (const code of [...Object.keys(REASONS), ...Object.keys(WARNINGS)]) {
    assert.ok(readme.includes(`\`${code}\``), `README documents ${code}`);
  }
});
