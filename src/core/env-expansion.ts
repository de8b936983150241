// Kubernetes `$(VAR)` references in env values, command and args: escaping text so the kubelet
// leaves it alone, and expanding references the way the kubelet does.

/** Compiled once per list of names: matches a `$` that does not start a reference to one of them. */
const UNKEPT_DOLLAR = new Map<string, RegExp>();
function unkeptDollar(keep: readonly string[]): RegExp {
  const key = keep.join('|');
  let regex = UNKEPT_DOLLAR.get(key);
  if (regex === undefined) {
    // Variable names are C identifiers here (the downward-API env vars), so no escaping is needed.
    regex = keep.length === 0 ? /\$/ : new RegExp(`\\$(?!\\((?:${key})\\))`);
    UNKEPT_DOLLAR.set(key, regex);
  }
  return regex;
}

/**
 * Escapes `text` so the kubelet's expansion leaves it exactly as given (`$$` is a literal `$`),
 * except for references to the variables in `keep`, which stay live.
 */
export function escapeEnvReferences(text: string, keep: readonly string[] = []): string {
  // Fast path (the usual case, every bootstrap): no `$` other than the references to keep, so the
  // kubelet's expansion would leave nothing else changed.
  if (!unkeptDollar(keep).test(text)) return text;
  // Replacement functions, because `$` is special in replacement strings.
  let escaped = text.replaceAll('$', () => '$$');
  for (const name of keep) escaped = escaped.replaceAll(`$$(${name})`, () => `$(${name})`);
  return escaped;
}

/**
 * Expands `$(VAR)` references in `text` with `values`, like the kubelet: `$$` is a literal `$`,
 * and a reference to an unknown variable is kept as written.
 */
export function expandEnvReferences(text: string, values: Readonly<Record<string, string>>): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char !== '$' || i + 1 >= text.length) {
      out += char;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const end = text.indexOf(')', i + 2);
      if (end === -1) {
        out += text.slice(i);
        break;
      }
      const name = text.slice(i + 2, end);
      const value = Object.hasOwn(values, name) ? values[name] : undefined;
      out += value ?? `$(${name})`;
      i = end;
    } else {
      out += char;
    }
  }
  return out;
}
