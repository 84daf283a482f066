// Output formatting that matches what the Go reference prints, so that a
// runtime (or a golden test) sees the same bytes from our plugins.

const HTML_UNSAFE = /[<>&\u2028\u2029]/g;

/**
 * JSON text as Go's encoding/json writes it: `indent` spaces per level
 * (0 = compact), and `<`, `>`, `&`, U+2028, U+2029 escaped as \u00XX. Those
 * characters can only occur inside string literals, so the replacement is safe.
 */
export function goJson(value: unknown, indent = 0): string {
  const text = indent > 0 ? JSON.stringify(value, null, indent) : JSON.stringify(value);
  return text.replace(HTML_UNSAFE, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

const GO_ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
};

/** A string quoted like Go's %q (for ASCII control characters and quotes). */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const esc = GO_ESCAPES[ch];
    if (esc !== undefined) out += esc;
    else {
      const code = ch.codePointAt(0) ?? 0;
      out += code < 0x20 || code === 0x7f ? '\\x' + code.toString(16).padStart(2, '0') : ch;
    }
  }
  return out + '"';
}

/** A string list formatted like Go's %q on a []string: `["a" "b"]`. */
export function goQuoteList(list: readonly string[]): string {
  return '[' + list.map(goQuote).join(' ') + ']';
}
