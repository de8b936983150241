// The README stays true: every config key, env var, annotation, reason and warning code is documented.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { describeConfigKeys } from '../src/config.ts';
import { KNOWN_ANNOTATIONS, annotationNames } from '../src/core/settings.ts';

const OVERRIDE_SETTINGS = annotationNames();
import { REASONS, WARNINGS } from '../src/core/reasons.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

test('every config key and its environment variable are in the README', () => {
  for (const { key, env } of describeConfigKeys()) {
    assert.ok(readme.includes(`\`${key}\``), `README documents ${key}`);
    assert.ok(readme.includes(`\`${env}\``), `README documents ${env}`);
  }
});

test('every annotation, reason code and warning code is in the README', () => {
  for (const setting of OVERRIDE_SETTINGS) assert.ok(readme.includes(`\`${setting}\``), `README documents ${setting}`);
  for (const annotation of KNOWN_ANNOTATIONS.filter((a) => !OVERRIDE_SETTINGS.some((s) => a.endsWith(`/${s}`)))) {
    assert.ok(readme.includes(annotation), `README documents ${annotation}`);
  }
  for (const code of [...Object.keys(REASONS), ...Object.keys(WARNINGS)]) {
    assert.ok(readme.includes(`\`${code}\``), `README documents ${code}`);
  }
});
