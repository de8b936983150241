// The folders of src/ depend on each other in one direction only (STYLE.md: thin transport, pure
// core): no folder cycle, and the core imports no other folder and nothing that does I/O.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const SRC = new URL('../src/', import.meta.url).pathname;
const folders = readdirSync(SRC).filter((name) => statSync(join(SRC, name)).isDirectory());
const importsOf = (file: string): string[] =>
  [...readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from '([^']+)'/gm)].map((m) => m[1] as string);

/** Folder → the folders its files import. */
const graph = new Map(
  folders.map((folder) => {
    const files = readdirSync(join(SRC, folder)).filter((f) => f.endsWith('.ts'));
    const targets = files.flatMap((f) => importsOf(join(SRC, folder, f))).flatMap((spec) => /^\.\.\/([a-z-]+)\//.exec(spec)?.[1] ?? []);
    return [folder, new Set(targets.filter((t) => t !== folder && folders.includes(t)))];
  }),
);

test('no folder of src/ imports, directly or not, a folder that imports it', () => {
  const reaches = (from: string, to: string, seen = new Set<string>()): boolean =>
    [...(graph.get(from) ?? [])].some((next) => next === to || (!seen.has(next) && (seen.add(next), reaches(next, to, seen))));
  for (const [folder, targets] of graph) {
    for (const target of targets) assert.ok(!reaches(target, folder), `${folder} → ${target} → … → ${folder} is a cycle`);
  }
  assert.ok(graph.size >= 7, [...graph.keys()].join(', '));
});

/** Modules that do I/O (node:net is allowed: the core uses its pure isIP). */
const IO = /^(node:)?(fs|http|https|http2|child_process|dgram|dns|worker_threads)(\/|$)|^fastify|^pino|^@kubernetes\/client-node$/;

test('the core imports no other folder of src/ and nothing that does I/O (types aside)', () => {
  assert.deepEqual([...(graph.get('core') ?? [])], []);
  for (const file of readdirSync(join(SRC, 'core'))) {
    const text = readFileSync(join(SRC, 'core', file), 'utf8');
    for (const [, spec] of text.matchAll(/^import (?!type )[^'"]*from '([^']+)'/gm)) {
      assert.ok(!IO.test(spec as string), `core/${file} imports ${spec}`);
    }
  }
});
