// shorten (src/core/reasons.ts) quotes user values in messages and log lines; it returns short
// printable values as they are without splitting them into characters. This checks that shortcut
// against the whole algorithm, written out here, over strings near the limits: control
// characters, surrogate pairs and lone surrogates, lengths around max and 2 × max.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { shorten } from '../src/core/reasons.ts';

/** The algorithm without the shortcut: control characters as spaces, at most `max` code points. */
function reference(value: string, max: number): string {
  const head = value.length > 2 * max + 2 ? value.slice(0, 2 * max + 2) : value;
  const chars = Array.from(head.replace(/\p{Cc}/gu, ' '));
  return chars.length <= max && head.length === value.length ? chars.join('') : `${chars.slice(0, max - 1).join('')}…`;
}

const pieces = fc.constantFrom('a', 'Z', '-', ' ', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u0085', '\u009f', '\u00a0', 'é', '😀', '\ud800', '\udc00', '…');

test('shorten gives what the whole algorithm gives, short printable values included', { timeout: 60_000 }, () => {
  fc.assert(
    fc.property(fc.array(pieces, { maxLength: 140 }).map((p) => p.join('')), fc.integer({ min: 1, max: 70 }), (value, max) => {
      assert.equal(shorten(value, max), reference(value, max));
    }),
    { numRuns: 5_000 },
  );
  assert.equal(shorten('reviews-v1-7d9c8b5f4d-', 253), 'reviews-v1-7d9c8b5f4d-');
  assert.equal(shorten('a\u0085b', 63), 'a b', 'a C1 control character is a space too');
});
