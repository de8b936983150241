// The Dockerfile cannot be built here (no Docker engine): what can be checked without one is checked —
// every file it copies exists and passes .dockerignore, stages refer to earlier stages, the runtime
// stage holds production dependencies only and runs non-root with iptables, the entry point is the
// package's binary, and production dependencies cover every module src/ imports.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { WEBHOOK_PORT } from '../src/constants.ts';

const ROOT = new URL('..', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; dependencies: Record<string, string>; engines: { node: string } };

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}
interface Stage {
  readonly name: string | undefined;
  readonly base: string;
  readonly instructions: Instruction[];
}

/** Parses the Dockerfile into stages of instructions (continuation lines joined, comments dropped). */
function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of logical) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const argsText = rest.join(' ');
    if (keyword.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(argsText);
      assert.ok(m, `FROM ${argsText}`);
      const base = (m[1] as string).replace(/\$\{(\w+)\}/g, (_, name: string) => args[name] ?? `\${${name}}`);
      stages.push({ name: m[2], base, instructions: [] });
    } else if (stages.length === 0) {
      assert.equal(keyword.toUpperCase(), 'ARG', `only ARG before the first FROM, got ${keyword}`);
      const [name = '', value = ''] = argsText.split('=');
      args[name] = value;
    } else {
      stages[stages.length - 1]?.instructions.push({ keyword: keyword.toUpperCase(), args: argsText });
    }
  }
  return { args, stages };
}

/** Whether `path` reaches the build context under an allow-list .dockerignore (`*` then `!…`). */
function inContext(path: string, patterns: readonly string[]): boolean {
  let included = true;
  for (const pattern of patterns) {
    const negate = pattern.startsWith('!');
    const body = negate ? pattern.slice(1) : pattern;
    const regex = new RegExp(`^${body.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\u0000/g, '.*')}$`);
    // A pattern matches the path or one of its parent directories (as Docker evaluates them).
    const segments = path.split('/');
    const matches = segments.some((_, i) => regex.test(segments.slice(0, i + 1).join('/')));
    if (matches) included = negate;
  }
  return included;
}

const { stages } = parseDockerfile(read('Dockerfile'));
const ignore = read('.dockerignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const final = stages[stages.length - 1] as Stage;
const named = (name: string) => stages.find((s) => s.name === name);
const copies = (stage: Stage) =>
  stage.instructions
    .filter((i) => i.keyword === 'COPY')
    .map((i) => {
      const from = /--from=(\S+)/.exec(i.args)?.[1];
      const parts = i.args.replace(/--\S+/g, '').trim().split(/\s+/);
      return { from, sources: parts.slice(0, -1), dest: parts[parts.length - 1] as string };
    });

test('every file the Dockerfile copies from the context exists and passes .dockerignore', () => {
  let checked = 0;
  for (const stage of stages) {
    for (const copy of copies(stage).filter((c) => c.from === undefined)) {
      for (const source of copy.sources) {
        assert.ok(existsSync(join(ROOT, source)), `${source} exists`);
        assert.ok(inContext(source, ignore), `${source} is in the build context`);
        if (statSync(join(ROOT, source)).isDirectory()) {
          for (const file of readdirSync(join(ROOT, source), { recursive: true }) as string[]) {
            assert.ok(inContext(`${source}/${file}`, ignore), `${source}/${file} is in the build context`);
          }
        }
        checked++;
      }
    }
  }
  assert.ok(checked >= 5, `${checked} sources checked`);
  // What must never reach a builder.
  for (const path of ['certs/ca.key', 'certs/tls.key', 'node_modules/fastify/package.json', '.git/config', 'test/http.test.ts', '.env', 'manifests/config.yaml']) {
    assert.ok(!inContext(path, ignore), `${path} stays out of the build context`);
  }
});

test('stages: production dependencies only in the runtime image, built output from the build stage', () => {
  assert.equal(stages.length, 3);
  for (const stage of stages) assert.match(stage.base, /^node:(\d+)-bookworm-slim$/);
  const nodeMajor = Number(/^node:(\d+)/.exec(final.base)?.[1]);
  assert.ok(nodeMajor >= Number(/\d+/.exec(pkg.engines.node)?.[0]), `node ${nodeMajor} satisfies engines ${pkg.engines.node}`);
  for (const stage of stages) {
    for (const copy of copies(stage).filter((c) => c.from !== undefined)) {
      const index = stages.findIndex((s) => s.name === copy.from);
      assert.ok(index >= 0 && index < stages.indexOf(stage), `COPY --from=${copy.from} refers to an earlier stage`);
    }
  }
  const finalCopies = copies(final);
  const modules = finalCopies.find((c) => c.dest === './node_modules');
  assert.ok(modules?.from !== undefined, 'node_modules comes from a stage');
  const depsStage = named(modules.from as string) as Stage;
  assert.ok(
    depsStage.instructions.some((i) => i.keyword === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args)),
    `stage ${depsStage.name} installs production dependencies only`,
  );
  assert.ok(!depsStage.instructions.some((i) => i.keyword === 'RUN' && /npm (ci|install)\b/.test(i.args) && !/--omit=dev/.test(i.args)));
  const dist = finalCopies.find((c) => c.dest === './dist');
  assert.ok(named(dist?.from as string)?.instructions.some((i) => i.keyword === 'RUN' && /npm run build/.test(i.args)), 'dist is built');
  assert.ok(finalCopies.some((c) => c.from === undefined && c.sources.includes('package.json')), 'package.json sits beside dist/ for version.ts');

  // --ignore-scripts is safe: no production dependency has an install script that matters. The
  // only ones are protobufjs 7's postinstall in the copies @grpc/grpc-js-xds's own code uses (which
  // the injector never loads: it reads only that package's .proto files); the script only warns
  // about a version scheme.
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean; hasInstallScript?: boolean; version?: string }> };
  const harmless = new Set(['node_modules/@grpc/grpc-js-xds/node_modules/protobufjs', 'node_modules/@grpc/proto-loader/node_modules/protobufjs']);
  const scripted = Object.entries(lock.packages)
    .filter(([name, p]) => name !== '' && p.hasInstallScript && !p.dev && !(harmless.has(name) && p.version?.startsWith('7.')))
    .map(([name]) => name);
  assert.deepEqual(scripted, []);
});

test('the runtime image runs the package binary as a non-root user, with iptables for envoy-init', () => {
  const instructions = final.instructions;
  const last = (keyword: string) => instructions.filter((i) => i.keyword === keyword).at(-1)?.args;
  const user = last('USER') ?? '';
  const [uid, gid] = user.split(':').map(Number);
  assert.ok(Number.isInteger(uid) && (uid as number) > 0 && Number.isInteger(gid) && (gid as number) > 0, `USER ${user} is numeric and not root`);
  assert.deepEqual(JSON.parse(last('ENTRYPOINT') ?? 'null'), ['envoy-injector']);
  assert.deepEqual(JSON.parse(last('CMD') ?? 'null'), ['serve']);
  assert.equal(Number(last('EXPOSE')), WEBHOOK_PORT);
  assert.match(last('ENV') ?? '', /NODE_ENV=production/);

  // The command on PATH is the package's bin, which must be an executable script.
  const bin = pkg.bin['envoy-injector'] as string;
  assert.ok(instructions.some((i) => i.keyword === 'RUN' && i.args.includes(`ln -s /app/${bin} /usr/local/bin/envoy-injector`)));
  assert.ok(read(`src/${bin.replace(/^dist\//, '').replace(/\.js$/, '.ts')}`).startsWith('#!/usr/bin/env node\n'), 'main has a shebang');

  // Debian's iptables package: iptables and ip6tables, each with the nft and legacy backends; and
  // iproute2, whose `ip` envoy-init runs to give lo the ::6 address of the IPv6 inbound passthrough.
  const install = instructions.find((i) => i.keyword === 'RUN' && /apt-get install/.test(i.args))?.args ?? '';
  assert.match(install, /--no-install-recommends iptables\b/);
  assert.match(install, /\biproute2\b/);
  assert.match(install, /rm -rf \/var\/lib\/apt\/lists/);
  // No package manager is left in the runtime image.
  assert.ok(instructions.some((i) => i.keyword === 'RUN' && /rm -rf \/usr\/local\/lib\/node_modules\/npm\b/.test(i.args)));
  // Installed before the user switch (apt needs root), and nothing runs as root after it.
  const userIndex = instructions.findIndex((i) => i.keyword === 'USER');
  assert.ok(instructions.findIndex((i) => i.keyword === 'RUN' && /apt-get/.test(i.args)) < userIndex);
  assert.ok(!instructions.slice(userIndex + 1).some((i) => i.keyword === 'RUN'));
});

test('production dependencies cover every package src/ imports at run time', () => {
  const dir = join(ROOT, 'src');
  const files = (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
  const needed = new Set<string>();
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    // Type-only imports are erased (verbatimModuleSyntax); every other import stays in the output.
    for (const m of text.matchAll(/^\s*(?:import|export)\s+(type\s+)?[^'";]*?from\s+'([^']+)'/gm)) {
      if (m[1] === undefined) needed.add(m[2] as string);
    }
    for (const m of text.matchAll(/import\(\s*'([^']+)'\s*\)/g)) needed.add(m[1] as string);
  }
  const packages = [...needed]
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s))
    .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : (s.split('/')[0] as string)));
  assert.ok(packages.length > 0);
  for (const name of new Set(packages)) assert.ok(name in pkg.dependencies, `${name} is a production dependency`);
});
