// The command line's flags, declared once per command: parsing (kubectl's conventions: `--flag
// value` or `--flag=value`, `-f` repeatable, no positional arguments), the errors for a flag a
// command does not take, and each command's `--help`, all come from these declarations.
import { parseArgs } from 'node:util';
import { closest } from '../core/suggest.ts';
import { UsageError } from '../errors.ts';

/** One flag of a command. */
export interface FlagSpec {
  /** Long name, without `--`. */
  readonly name: string;
  readonly short?: string;
  /** A flag without a value (`--recursive`), or one with (`--file FILE`). */
  readonly type: 'boolean' | 'string';
  /** The value's placeholder in the help (`FILE`, `true|false`). */
  readonly value?: string;
  /** May be given several times (`-f a.yaml -f b.yaml`). */
  readonly multiple?: boolean;
  /** The values accepted, when they are a fixed list (checked when parsed). */
  readonly choices?: readonly string[];
  /** One sentence for the help. */
  readonly doc: string;
}

/** A command: its name, what its help shows, and its flags. */
export interface CommandSpec {
  readonly name: string;
  /** One line for the global help. */
  readonly summary: string;
  /** The synopsis after `envoy-injector `, e.g. `inject -f FILE|- [flags]`. */
  readonly synopsis: string;
  /** Paragraphs of the command's own help, before its flags. */
  readonly description: string;
  readonly flags: readonly FlagSpec[];
}

/** What a command was given: its flag values by long name. */
export type FlagValues = Readonly<Record<string, string | boolean | readonly string[] | undefined>>;

const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', type: 'boolean', doc: "Show this command's help." };

/** The flags of `command` as node:util's parseArgs takes them, `--help` included. */
function parseOptions(command: CommandSpec) {
  return Object.fromEntries(
    [...command.flags, HELP_FLAG].map((f) => [
      f.name,
      { type: f.type, ...(f.short === undefined ? {} : { short: f.short }), ...(f.multiple === true ? { multiple: true } : {}) },
    ]),
  );
}

/** Every flag spelling of `command`, for "did you mean". */
function spellings(command: CommandSpec): string[] {
  return [...command.flags, HELP_FLAG].flatMap((f) => [`--${f.name}`, ...(f.short === undefined ? [] : [`-${f.short}`])]);
}

/**
 * Parses `args` as `command`'s flags, or throws a UsageError naming the first bad argument: a
 * flag the command does not take (with the closest one it does, and the commands that do take
 * it), a missing or unaccepted value, or a positional argument.
 */
export function parseFlags(command: CommandSpec, args: readonly string[], all: readonly CommandSpec[] = []): { values: FlagValues; help: boolean } {
  const help = `see envoy-injector ${command.name} --help`;
  const { tokens } = parseArgs({ args: [...args], options: parseOptions(command), allowPositionals: true, strict: false, tokens: true });
  const known = new Map([...command.flags, HELP_FLAG].map((f) => [f.name, f]));
  const values: Record<string, string | boolean | string[]> = {};
  for (const token of tokens) {
    if (token.kind === 'positional') {
      throw new UsageError(`${command.name} takes no argument ${JSON.stringify(token.value)} (input files go after -f); ${help}`);
    }
    if (token.kind !== 'option') continue;
    const spec = known.get(token.name);
    if (spec === undefined) {
      const others = all.filter((c) => c !== command && c.flags.some((f) => f.name === token.name)).map((c) => c.name);
      const suggestion = closest(token.rawName, spellings(command));
      if (others.length > 0) throw new UsageError(`${command.name} does not take ${token.rawName} (a flag of ${others.join(', ')}); ${help}`);
      throw new UsageError(`unknown flag ${token.rawName}${suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`}; ${help}`);
    }
    if (spec.type === 'boolean') {
      if (token.inlineValue === true) throw new UsageError(`${token.rawName} takes no value; ${help}`);
      values[spec.name] = true;
      continue;
    }
    // `-o=json` as pflag (kubectl) reads it; a value that looks like a flag was a forgotten value.
    let value = token.value;
    if (value !== undefined && token.inlineValue === true && token.rawName.length === 2) value = value.replace(/^=/, '');
    if (value === undefined || (token.inlineValue !== true && value.length > 1 && value.startsWith('-'))) {
      throw new UsageError(`${token.rawName} needs a value (${token.rawName} ${spec.value ?? 'VALUE'}); ${help}`);
    }
    if (spec.choices !== undefined && !spec.choices.includes(value)) {
      throw new UsageError(`${token.rawName} must be one of ${spec.choices.join(', ')}, not ${JSON.stringify(value)}`);
    }
    const previous = values[spec.name];
    if (spec.multiple === true) values[spec.name] = [...(Array.isArray(previous) ? previous : []), value];
    else if (previous !== undefined) throw new UsageError(`${token.rawName} given twice; ${help}`);
    else values[spec.name] = value;
  }
  return { values, help: values['help'] === true };
}

const FLAG_COLUMN = 30;
const WIDTH = 100;

/** Wraps `text` in the column right of the flags. */
function wrap(text: string, indent: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent + line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(line);
  return lines;
}

/** One flag's lines of a help text. */
function flagHelp(flag: FlagSpec): string {
  const names = `${flag.short === undefined ? '    ' : `-${flag.short}, `}--${flag.name}${flag.type === 'string' ? ` ${flag.value ?? 'VALUE'}` : ''}`;
  const doc = wrap(flag.doc, FLAG_COLUMN);
  const head = `  ${names}`;
  const first = head.length < FLAG_COLUMN ? `${head.padEnd(FLAG_COLUMN)}${doc[0] ?? ''}` : `${head}\n${' '.repeat(FLAG_COLUMN)}${doc[0] ?? ''}`;
  return [first, ...doc.slice(1).map((l) => ' '.repeat(FLAG_COLUMN) + l)].join('\n');
}

/** Returns a command's `--help`: synopsis, description and every flag it takes. */
export function commandHelp(command: CommandSpec): string {
  return `Usage: envoy-injector ${command.synopsis}

${command.description.trim()}

Flags:
${[...command.flags, HELP_FLAG].map(flagHelp).join('\n')}
`;
}
