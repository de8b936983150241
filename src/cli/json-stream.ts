// A stream of JSON values, as kubectl reads a JSON input (one object, or several one after the
// other): split into its values, each checked as strict JSON (RFC 8259) so that a syntax error is
// named by line and column rather than by V8's message, which quotes the source.

/** Where one value of the stream is in its text. */
export interface JsonSpan {
  readonly start: number;
  readonly end: number;
}

/** A syntax error: where, and what was expected. */
export interface JsonSyntaxError {
  readonly offset: number;
  readonly message: string;
  /** 0-based position, in the stream, of the value it is in. */
  readonly value: number;
}

/** Deepest nesting accepted: far beyond any manifest, and well within the stack. */
const MAX_DEPTH = 1000;

class SyntaxProblem extends Error {
  constructor(
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPES = new Set(['"', '\\', '/', 'b', 'f', 'n', 'r', 't']);

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  skipWhitespace(): void {
    while (this.pos < this.text.length && WHITESPACE.has(this.text[this.pos] as string)) this.pos++;
  }

  fail(message: string): never {
    throw new SyntaxProblem(this.pos, message);
  }

  expect(char: string, what: string): void {
    this.skipWhitespace();
    if (this.text[this.pos] !== char) this.fail(`expected ${what}`);
    this.pos++;
  }

  value(depth: number): void {
    this.skipWhitespace();
    if (depth > MAX_DEPTH) this.fail(`values nested more than ${MAX_DEPTH} deep`);
    const char = this.text[this.pos];
    if (char === '{') this.object(depth);
    else if (char === '[') this.array(depth);
    else if (char === '"') this.string();
    else if (char === '-' || (char !== undefined && char >= '0' && char <= '9')) this.number();
    else if (this.text.startsWith('true', this.pos)) this.pos += 4;
    else if (this.text.startsWith('false', this.pos)) this.pos += 5;
    else if (this.text.startsWith('null', this.pos)) this.pos += 4;
    else this.fail(char === undefined ? 'unexpected end of input' : 'expected a value (an object, array, string, number, true, false or null)');
  }

  object(depth: number): void {
    this.pos++;
    this.skipWhitespace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return;
    }
    for (;;) {
      this.skipWhitespace();
      if (this.text[this.pos] !== '"') this.fail('expected a member name in double quotes');
      this.string();
      this.expect(':', "':' after a member name");
      this.value(depth + 1);
      this.skipWhitespace();
      const next = this.text[this.pos];
      if (next === '}') {
        this.pos++;
        return;
      }
      if (next !== ',') this.fail("expected ',' or '}' after a member");
      this.pos++;
    }
  }

  array(depth: number): void {
    this.pos++;
    this.skipWhitespace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return;
    }
    for (;;) {
      this.value(depth + 1);
      this.skipWhitespace();
      const next = this.text[this.pos];
      if (next === ']') {
        this.pos++;
        return;
      }
      if (next !== ',') this.fail("expected ',' or ']' after an element");
      this.pos++;
    }
  }

  string(): void {
    this.pos++;
    for (;;) {
      const char = this.text[this.pos];
      if (char === undefined) this.fail('unterminated string');
      if (char === '"') {
        this.pos++;
        return;
      }
      if (char < ' ') this.fail('control character in a string (escape it)');
      if (char === '\\') {
        const escaped = this.text[this.pos + 1];
        if (escaped === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(this.text.slice(this.pos + 2, this.pos + 6))) this.fail('bad \\u escape');
          this.pos += 6;
          continue;
        }
        if (escaped === undefined || !ESCAPES.has(escaped)) this.fail('bad escape in a string');
        this.pos += 2;
        continue;
      }
      this.pos++;
    }
  }

  number(): void {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (match === null) this.fail('bad number');
    this.pos += match[0].length;
  }
}

/** Returns the spans of the JSON values of `text` (whitespace between them), or the first syntax error. */
export function splitJsonStream(text: string): { ok: true; spans: JsonSpan[] } | { ok: false; error: JsonSyntaxError } {
  const scanner = new Scanner(text);
  const spans: JsonSpan[] = [];
  try {
    scanner.skipWhitespace();
    while (scanner.pos < text.length) {
      const start = scanner.pos;
      scanner.value(0);
      spans.push({ start, end: scanner.pos });
      scanner.skipWhitespace();
    }
  } catch (error) {
    if (error instanceof SyntaxProblem) return { ok: false, error: { offset: error.offset, message: error.message, value: spans.length } };
    throw error;
  }
  return { ok: true, spans };
}

/** The indentation of a JSON value's text, to print it back alike: undefined when it is on one line. */
export function jsonIndentation(text: string): string | undefined {
  const match = /\n([ \t]+)["}\]]/.exec(text);
  if (match === null) return text.includes('\n') ? '' : undefined;
  const indent = match[1] as string;
  return indent.startsWith('\t') ? '\t' : ' '.repeat(Math.min(indent.length, 10));
}
