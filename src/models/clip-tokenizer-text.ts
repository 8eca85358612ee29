// CLIP's text clean-up and pre-tokenization, keeping track of where every piece came from in
// the caller's original text (so a word can be found by character offset and reported back).
//
// Clean-up as CLIP does it: Unicode NFC (ftfy and Hugging Face's tokenizers both apply it),
// each run of whitespace -> one space, strip, lower-case. ftfy's mojibake repair and HTML
// unescaping are not done: prompts are assumed to be intact text.

/** One normalized text and, per UTF-16 unit of it, the span of the original text it came from. */
export interface NormalizedText {
  readonly text: string;
  readonly sourceStart: readonly number[];
  readonly sourceEnd: readonly number[];
}

export type PieceKind = 'special' | 'letters' | 'digit' | 'other';

/** A pre-tokenized piece: its normalized text and its span [start, end) in the original text. */
export interface Piece {
  readonly text: string;
  readonly kind: PieceKind;
  readonly start: number;
  readonly end: number;
}

export const START_TOKEN = '<|startoftext|>';
export const END_TOKEN = '<|endoftext|>';

// CLIP's split pattern. `\p{White_Space}` stands for Python's `\s` (JS's `\s` also matches
// U+FEFF, which Unicode does not count as whitespace).
const PIECE = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\p{White_Space}\p{L}\p{N}]+/giu;
const WHITESPACE_RUN = /\p{White_Space}+/gu;
const ASCII = /^[\x00-\x7f]*$/;
// A cluster is what NFC and lower-casing can change as a unit: a base character with the marks
// (and Hangul vowel/final jamo) that may compose onto it. Whitespace runs are clusters of their own.
const COMBINING = String.raw`\p{M}\u1160-\u11FF\uD7B0-\uD7FF`;
const CLUSTER = new RegExp(String.raw`(\p{White_Space}+)|[^${COMBINING}][${COMBINING}]*|[${COMBINING}]+`, 'gu');

const isAsciiSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** The clean-up CLIP applies before splitting, with the source span of each output unit. */
export function normalizeText(original: string): NormalizedText {
  if (ASCII.test(original)) return normalizeAscii(original);
  const text = original.normalize('NFC').replace(WHITESPACE_RUN, ' ').replace(/^ | $/g, '').toLowerCase();
  const sourceStart: number[] = [];
  const sourceEnd: number[] = [];
  let space: { start: number; end: number } | null = null;
  for (const m of original.matchAll(CLUSTER)) {
    const start = m.index;
    const end = start + m[0].length;
    if (m[1] !== undefined) {
      if (sourceStart.length > 0) space = { start, end }; // leading whitespace is stripped
      continue;
    }
    if (space) {
      sourceStart.push(space.start);
      sourceEnd.push(space.end);
      space = null;
    }
    // Same length: unit i came from unit i (a word may end before a spacing mark). Otherwise
    // (composed accents, 'İ' -> 'i̇'), every output unit spans the whole cluster.
    const units = m[0].normalize('NFC').toLowerCase().length;
    const oneToOne = units === m[0].length;
    for (let i = 0; i < units; i++) {
      sourceStart.push(oneToOne ? start + i : start);
      sourceEnd.push(oneToOne ? start + i + 1 : end);
    }
  }
  if (sourceStart.length !== text.length) {
    // NFC composed across clusters (exotic scripts): the ids stay exact, the spans become
    // approximate rather than wrong-length.
    sourceStart.length = sourceEnd.length = 0;
    for (let i = 0; i < text.length; i++) {
      sourceStart.push(Math.min(i, original.length));
      sourceEnd.push(Math.min(i + 1, original.length));
    }
  }
  return { text, sourceStart, sourceEnd };
}

/** The common case without Unicode work: ASCII is its own NFC and lowers unit for unit. */
function normalizeAscii(original: string): NormalizedText {
  let text = '';
  const sourceStart: number[] = [];
  const sourceEnd: number[] = [];
  for (let i = 0; i < original.length; ) {
    if (isAsciiSpace(original.charCodeAt(i))) {
      const start = i;
      while (i < original.length && isAsciiSpace(original.charCodeAt(i))) i++;
      if (text.length > 0 && i < original.length) {
        text += ' ';
        sourceStart.push(start);
        sourceEnd.push(i);
      }
      continue;
    }
    text += original[i]!.toLowerCase();
    sourceStart.push(i);
    sourceEnd.push(++i);
  }
  return { text, sourceStart, sourceEnd };
}

/** Splits normalized text with CLIP's pattern; spans point into the original text. */
export function preTokenize(normalized: NormalizedText): Piece[] {
  const pieces: Piece[] = [];
  for (const m of normalized.text.matchAll(PIECE)) {
    const text = m[0];
    const last = m.index + text.length - 1;
    pieces.push({
      text,
      kind: pieceKind(text),
      start: normalized.sourceStart[m.index]!,
      end: normalized.sourceEnd[last]!,
    });
  }
  return pieces;
}

function pieceKind(text: string): PieceKind {
  if (text === START_TOKEN || text === END_TOKEN) return 'special';
  if (/^\p{L}/u.test(text)) return 'letters';
  if (/^\p{N}$/u.test(text)) return 'digit';
  return 'other';
}
