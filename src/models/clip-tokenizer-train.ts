// Training a small byte-level BPE in CLIP's format from a corpus (the captions of a data set),
// for models that cannot ship CLIP's own vocabulary. The vocabulary is laid out as CLIP's: the
// 256 byte symbols, the same with '</w>', one token per merge, then <|startoftext|> and
// <|endoftext|> as the last two ids (so "pool at the largest id" finds the end token). Every
// byte stays a token, so any text encodes; merges go on until every word seen at least
// `minWordCount` times is a single token (or `maxMerges` is reached).
import { BYTE_SYMBOL_ORDER, END_OF_WORD, toByteSymbols } from './clip-tokenizer-bpe.js';
import { ClipTokenizer } from './clip-tokenizer.js';
import { END_TOKEN, normalizeText, preTokenize, START_TOKEN } from './clip-tokenizer-text.js';

export interface TrainTokenizerOptions {
  /** Words seen fewer times are left to bytes and smaller pieces. Default 1 (every word). */
  minWordCount?: number;
  /** At most this many merges. Default 20 000. */
  maxMerges?: number;
}

export interface TrainedTokenizer {
  tokenizer: ClipTokenizer;
  /** Distinct words (pre-tokenized pieces) in the corpus, and those at least minWordCount times. */
  words: number;
  frequentWords: number;
  /** Frequent words that did not become one token (only when maxMerges stopped the training). */
  splitWords: number;
}

/** One distinct word: its current pieces and how often it occurs. */
interface Word {
  pieces: string[];
  count: number;
}

const pairKey = (a: string, b: string) => `${a} ${b}`;

/** Counts CLIP's pre-tokenized pieces (lower-cased, NFC) of every text. */
export function countWords(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    if (typeof text !== 'string') throw new TypeError(`trainClipTokenizer: every text must be a string, not ${typeof text}`);
    for (const piece of preTokenize(normalizeText(text))) {
      if (piece.kind === 'special') continue;
      counts.set(piece.text, (counts.get(piece.text) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * Byte-level BPE trained on `texts`. Each step merges the most frequent adjacent pair (ties: the
 * smaller "a b" string), everywhere it occurs, left to right: exactly what encoding does with the
 * merges in rank order, so every trained word encodes to the pieces it ended with here.
 */
export function trainClipTokenizer(texts: Iterable<string>, options: TrainTokenizerOptions = {}): TrainedTokenizer {
  const { minWordCount = 1, maxMerges = 20_000 } = options;
  if (!Number.isSafeInteger(minWordCount) || minWordCount < 1) throw new RangeError(`trainClipTokenizer: minWordCount must be an integer ≥ 1, not ${minWordCount}`);
  if (!Number.isSafeInteger(maxMerges) || maxMerges < 0) throw new RangeError(`trainClipTokenizer: maxMerges must be an integer ≥ 0, not ${maxMerges}`);
  const counts = countWords(texts);
  const words: Word[] = [];
  for (const [text, count] of [...counts].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (count < minWordCount) continue;
    const pieces = [...toByteSymbols(text)];
    pieces[pieces.length - 1] += END_OF_WORD;
    words.push({ pieces, count });
  }
  const merges = learnMerges(words, maxMerges);
  const vocab = new Map<string, number>();
  for (const token of [...BYTE_SYMBOL_ORDER, ...BYTE_SYMBOL_ORDER.map((s) => s + END_OF_WORD), ...merges.map((m) => m.replace(' ', ''))]) {
    if (!vocab.has(token)) vocab.set(token, vocab.size); // two merges may spell the same token
  }
  vocab.set(START_TOKEN, vocab.size);
  vocab.set(END_TOKEN, vocab.size);
  const tokenizer = new ClipTokenizer({ vocab, merges, vocabSource: 'trained vocabulary', mergesSource: 'trained merges' });
  return { tokenizer, words: counts.size, frequentWords: words.length, splitWords: words.filter((w) => w.pieces.length > 1).length };
}

/** The merges, in rank order; `words` end in their final pieces. */
function learnMerges(words: Word[], maxMerges: number): string[] {
  // Pair counts over all words, and which words hold each pair, updated as words change.
  const pairCounts = new Map<string, number>();
  const holders = new Map<string, Set<number>>();
  const addPairs = (w: number, sign: 1 | -1) => {
    const { pieces, count } = words[w]!;
    for (let i = 0; i + 1 < pieces.length; i++) {
      const key = pairKey(pieces[i]!, pieces[i + 1]!);
      const n = (pairCounts.get(key) ?? 0) + sign * count;
      if (n > 0) pairCounts.set(key, n);
      else pairCounts.delete(key);
      if (sign > 0) {
        let set = holders.get(key);
        if (!set) holders.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  words.forEach((_, w) => addPairs(w, 1));
  const merges: string[] = [];
  while (merges.length < maxMerges && pairCounts.size > 0) {
    let best = '';
    let bestCount = 0;
    for (const [key, n] of pairCounts) {
      if (n > bestCount || (n === bestCount && key < best)) {
        best = key;
        bestCount = n;
      }
    }
    merges.push(best);
    const [first, second] = best.split(' ') as [string, string];
    const merged = first + second;
    for (const w of holders.get(best) ?? []) {
      const { pieces } = words[w]!;
      if (!pieces.some((p, i) => p === first && pieces[i + 1] === second)) continue; // a stale holder
      addPairs(w, -1);
      const next: string[] = [];
      for (let i = 0; i < pieces.length; i++) {
        if (i + 1 < pieces.length && pieces[i] === first && pieces[i + 1] === second) {
          next.push(merged);
          i++;
        } else next.push(pieces[i]!);
      }
      words[w]!.pieces = next;
      addPairs(w, 1);
    }
    holders.delete(best);
  }
  return merges;
}
