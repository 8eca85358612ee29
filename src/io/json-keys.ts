// JSON.parse keeps the last of two equal keys without a word; a safetensors header that names a
// tensor twice is ambiguous, so the reader looks for repeats with this scan.

export interface DuplicateKey {
  readonly key: string;
  /** The key whose object holds the repeat, or null for the outermost object. */
  readonly owner: string | null;
}

interface Frame {
  readonly keys: Set<string> | null; // null for arrays
  readonly owner: string | null;
}

/** The first key that appears twice in one object of `text`, which must already parse as JSON. */
export function findDuplicateKey(text: string): DuplicateKey | null {
  const stack: Frame[] = [];
  let lastKey: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      let next = end + 1;
      while (next < text.length && isSpace(text.charCodeAt(next))) next++;
      if (text.charCodeAt(next) === 0x3a /* : */) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        const frame = stack[stack.length - 1];
        if (frame?.keys) {
          if (frame.keys.has(key)) return { key, owner: frame.owner };
          frame.keys.add(key);
        }
        lastKey = key;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), owner: stack.length === 0 ? null : lastKey });
    } else if (c === 0x5b /* [ */) {
      stack.push({ keys: null, owner: lastKey });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    }
  }
  return null;
}

/** Index of the quote that closes the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x5c /* \ */) i += 2;
    else if (c === 0x22) return i;
    else i++;
  }
  return text.length;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}
