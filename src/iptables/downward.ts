// Reading the downward API's files. Pure: text in, values out.
//
// The kubelet writes a map field (`metadata.labels`, `metadata.annotations`) as one `key="value"`
// line per entry, keys sorted, each value quoted as Go's %q does (strconv.Quote: `\"`, `\\`, `\n`,
// `\t`, … and `\xHH`, `\uHHHH`, `\UHHHHHHHH` for what is not printable), lines joined by `\n`.
// Label values cannot hold anything that needs quoting, but annotations can, and a reader that
// handles every escape reads both.

/** The single-character escapes of Go's quoting. */
const SIMPLE_ESCAPES: Readonly<Record<string, number>> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92, "'": 39, '"': 34 };

/** Unquotes a Go double-quoted string literal (strconv.Unquote), or returns undefined when it is not one. */
export function unquoteGo(literal: string): string | undefined {
  if (literal.length < 2 || !literal.startsWith('"') || !literal.endsWith('"')) return undefined;
  const body = literal.slice(1, -1);
  // \x and octal escapes are single bytes (possibly part of a UTF-8 sequence): collect bytes.
  const bytes: number[] = [];
  const pushText = (text: string) => bytes.push(...Buffer.from(text, 'utf8'));
  for (let i = 0; i < body.length; i++) {
    const char = body[i] as string;
    if (char === '"') return undefined; // an unescaped quote ends the literal early
    if (char !== '\\') {
      // Whole code points (a surrogate pair is one character of the value).
      const codePoint = body.codePointAt(i) as number;
      const text = String.fromCodePoint(codePoint);
      pushText(text);
      i += text.length - 1;
      continue;
    }
    const kind = body[i + 1];
    if (kind === undefined) return undefined;
    const simple = SIMPLE_ESCAPES[kind];
    if (simple !== undefined) {
      bytes.push(simple);
      i += 1;
      continue;
    }
    const hex = (digits: number): number | undefined => {
      const text = body.slice(i + 2, i + 2 + digits);
      return text.length === digits && /^[0-9a-fA-F]+$/.test(text) ? Number.parseInt(text, 16) : undefined;
    };
    if (kind === 'x') {
      const value = hex(2);
      if (value === undefined) return undefined;
      bytes.push(value);
      i += 3;
    } else if (kind === 'u' || kind === 'U') {
      const digits = kind === 'u' ? 4 : 8;
      const value = hex(digits);
      if (value === undefined || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return undefined;
      pushText(String.fromCodePoint(value));
      i += 1 + digits;
    } else if (/[0-7]/.test(kind)) {
      const text = body.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(text) || Number.parseInt(text, 8) > 255) return undefined;
      bytes.push(Number.parseInt(text, 8));
      i += 3;
    } else {
      return undefined;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Parses a downward-API file of a map field into the map, or returns the first line that is not `key="value"`. */
export function parseDownwardMap(text: string): { ok: true; map: Record<string, string> } | { ok: false; line: string } {
  const entries: [string, string][] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const eq = line.indexOf('=');
    const value = eq <= 0 ? undefined : unquoteGo(line.slice(eq + 1));
    if (value === undefined) return { ok: false, line };
    entries.push([line.slice(0, eq), value]);
  }
  // fromEntries: every key an own property, even one named like an Object.prototype member.
  return { ok: true, map: Object.fromEntries(entries) };
}
