// Byte-level BPE as CLIP (and GPT-2) define it. Text becomes UTF-8 bytes, each byte becomes one
// printable symbol (so merges and vocab files are plain text), and merges join adjacent symbols
// by rank. The last symbol of a word carries '</w>', so "cat" at a word end differs from "cat"
// inside "catalog".

export const END_OF_WORD = '</w>';

/**
 * The reversible byte -> symbol map, in CLIP's order: the printable Latin-1 bytes ('!'..'~',
 * '¡'..'¬', '®'..'ÿ') stand for themselves, every other byte b becomes the character 256 + n
 * (n counting those bytes upwards). CLIP's vocabulary lists the symbols in exactly this order.
 */
function buildByteSymbols(): { order: readonly string[]; byByte: readonly string[] } {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const byByte: string[] = new Array<string>(256);
  const order: string[] = [];
  for (const b of printable) {
    byByte[b] = String.fromCharCode(b);
    order.push(byByte[b]);
  }
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (byByte[b] !== undefined) continue;
    byByte[b] = String.fromCharCode(256 + n++);
    order.push(byByte[b]);
  }
  return { order, byByte };
}

const BYTE_SYMBOLS = buildByteSymbols();

/** The 256 byte symbols in CLIP's vocabulary order. */
export const BYTE_SYMBOL_ORDER: readonly string[] = BYTE_SYMBOLS.order;

const BYTE_OF_SYMBOL = new Map<string, number>(BYTE_SYMBOLS.byByte.map((s, b) => [s, b]));
const utf8 = new TextEncoder();

/** The byte symbols of a string's UTF-8 encoding (one symbol per byte). */
export function toByteSymbols(text: string): string {
  let out = '';
  for (const b of utf8.encode(text)) out += BYTE_SYMBOLS.byByte[b]!;
  return out;
}

/** The byte a symbol stands for, or undefined when the character is not a byte symbol. */
export function byteOfSymbol(symbol: string): number | undefined {
  return BYTE_OF_SYMBOL.get(symbol);
}

/**
 * Applies ranked merges to one word. `merges` are "a b" lines, rank = position; the key of a
 * pair is that same "a b" text (byte symbols never contain a space, so it is unambiguous).
 */
export class BpeMerger {
  private readonly ranks = new Map<string, number>();

  constructor(merges: readonly string[]) {
    merges.forEach((pair, rank) => this.ranks.set(pair, rank));
  }

  /** The BPE pieces of one word given as byte symbols; the last piece ends with '</w>'. */
  apply(symbols: string): string[] {
    let word = symbols.split('');
    word[word.length - 1] += END_OF_WORD;
    while (word.length > 1) {
      // The lowest-ranked adjacent pair merges first, everywhere it occurs, left to right.
      let bestRank = Infinity;
      let best = -1;
      for (let i = 0; i < word.length - 1; i++) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < word.length; i++) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i++;
        } else {
          merged.push(word[i]!);
        }
      }
      word = merged;
    }
    return word;
  }
}
