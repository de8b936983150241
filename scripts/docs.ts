// `npm run docs`: rewrites the README's generated tables — the per-pod annotations, the config keys,
// init-iptables' flags, check's finding codes, every command's flags and the exit codes — from their
// declarations (src/core/settings.ts, src/check/findings.ts, src/cli.ts and its commands), between
// `<!-- BEGIN GENERATED name -->` and `<!-- END GENERATED name -->`.
// test/docs.test.ts fails when the README and the declarations disagree.
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { FINDINGS } from '../src/check/findings.ts';
import { BOOTSTRAP_FLAGS, initFlags } from '../src/core/init-flags.ts';
import { builtInProxyConfig } from '../src/core/overrides.ts';
import { SETTINGS, annotationKey, type Setting, type SettingsTable } from '../src/core/settings.ts';
import { OTHER_INIT_FLAGS } from '../src/iptables/options.ts';
import { COMMANDS, EXIT_CODES } from '../src/cli.ts';
import { CERTS_COMMAND } from '../src/cli/certs.ts';
import { CHECK_COMMAND } from '../src/cli/check.ts';
import { CNI_NODE_COMMAND } from '../src/cni/agent.ts';
import type { CommandSpec, FlagSpec } from '../src/cli/flags.ts';

const README = new URL('../README.md', import.meta.url);

/** A table cell: `|` would end it, even inside a code span. */
const cell = (text: string): string => text.replaceAll('|', '\\|');
const code = (text: string): string => (text === '' ? '(none)' : `\`${text}\``);
const row = (cells: readonly string[]): string => `| ${cells.map(cell).join(' | ')} |`;

/** A setting's default as the README shows it. */
function defaultText(setting: Setting): string {
  if (setting.doc.default !== undefined) return setting.doc.default;
  return code(setting.syntax.format(setting.default));
}

/** How a flag is written in the README: `-f, --file FILE|DIR|-`. */
const flagName = (f: FlagSpec): string =>
  `\`${f.short === undefined ? '' : `-${f.short}, `}--${f.name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}\`${f.multiple === true ? ' (repeatable)' : ''}`;

/** The commands' flags, one table each, in the order the help lists them. */
function commandTables(commands: readonly CommandSpec[]): string {
  return commands
    .filter((c) => c.flags.length > 0)
    .map((c) => [`**\`envoy-injector ${c.synopsis}\`**`, '', '| flag | |', '|---|---|', ...c.flags.map((f) => row([flagName(f), f.doc]))].join('\n'))
    .join('\n\n');
}

/** The generated sections of the README, by name. */
export function readmeSections(table: SettingsTable = SETTINGS): Record<string, string> {
  const annotated = table.filter((s) => s.pod?.annotation !== undefined);
  const defaults = builtInProxyConfig(table);
  return {
    annotations: [
      '| annotation | accepted | default (config key) |',
      '|---|---|---|',
      ...annotated.map((s) => row([`\`${s.pod?.annotation}\``, s.pod?.accepted ?? '', `${defaultText(s)} (\`${s.key}\`)`])),
    ].join('\n'),
    config: [
      '| key | environment variable | default | |',
      '|---|---|---|---|',
      ...table.map((s) => {
        const annotation = s.pod?.annotation === undefined ? '' : ` Pods may set it with \`${annotationKey(s.pod.annotation)}\`.`;
        return row([`\`${s.key}\``, `\`${s.env}\``, defaultText(s), `${s.doc.description}${annotation}`]);
      }),
    ].join('\n'),
    'init-flags': [
      '| flag | default | |',
      '|---|---|---|',
      ...initFlags(table).map((flag) => row([`\`--${flag.name}=${flag.syntax.hint}\``, code(flag.syntax.format(flag.at.get(defaults))), flag.doc])),
      ...BOOTSTRAP_FLAGS.map((flag) => row([`\`--${flag.name}=${flag.syntax.hint}\``, code(flag.default), flag.doc])),
      ...OTHER_INIT_FLAGS.map((flag) => row([`\`${flag.flag}\``, flag.default === '' ? '' : code(flag.default), flag.doc])),
    ].join('\n'),
    'cli-flags': commandTables([...COMMANDS.filter((c) => c.name !== 'help'), CHECK_COMMAND, CERTS_COMMAND, CNI_NODE_COMMAND]),
    'exit-codes': ['| exit | meaning |', '|---|---|', ...EXIT_CODES.map((e) => row([String(e.code), e.meaning]))].join('\n'),
    'check-findings': [
      '| code | level | meaning |',
      '|---|---|---|',
      ...Object.entries(FINDINGS).map(([name, f]) => row([`\`${name}\``, f.level.toUpperCase(), f.sentence])),
    ].join('\n'),
  };
}

/** Returns `readme` with every generated section rewritten; throws if a section's markers are missing. */
export function updateReadme(readme: string, sections: Record<string, string> = readmeSections()): string {
  let text = readme;
  for (const [name, body] of Object.entries(sections)) {
    const begin = `<!-- BEGIN GENERATED ${name} (npm run docs) -->`;
    const end = `<!-- END GENERATED ${name} -->`;
    const from = text.indexOf(begin);
    const to = text.indexOf(end);
    if (from === -1 || to === -1 || to < from) throw new Error(`README.md: markers of the generated section ${name} are missing`);
    text = `${text.slice(0, from + begin.length)}\n${body}\n${text.slice(to)}`;
  }
  return text;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const before = readFileSync(README, 'utf8');
  const after = updateReadme(before);
  if (after !== before) writeFileSync(README, after);
  process.stdout.write(after === before ? 'README.md is up to date\n' : 'README.md rewritten\n');
}
