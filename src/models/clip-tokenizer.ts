// CLIP's tokenizer as Stable Diffusion 1.5 uses it: byte-level BPE, a start token, the prompt's
// tokens, an end token, padded with the end token to 77. It also reports which token positions
// each word of the prompt occupies, so a subject can be bound to a word ("man") or to a character
// offset (FastComposer captions).
import { BpeMerger, BYTE_SYMBOL_ORDER, byteOfSymbol, END_OF_WORD, toByteSymbols } from './clip-tokenizer-bpe.js';
import { ClipTokenizerError, type ClipTokenizerFiles, readBpeFile, readTokenizerFolder, writeTokenizerFolder } from './clip-tokenizer-files.js';
import { END_TOKEN, normalizeText, preTokenize, START_TOKEN } from './clip-tokenizer-text.js';

export { ClipTokenizerError, type ClipTokenizerFiles } from './clip-tokenizer-files.js';

/** The context length of CLIP's text encoder. */
export const CLIP_MAX_LENGTH = 77;

export interface EncodeOptions {
  /** Total length including start and end tokens (≥ 2); Infinity only with pad: false. */
  readonly maxLength?: number;
  /** Pad with the pad token (the end token for SD 1.5) up to maxLength. */
  readonly pad?: boolean;
}

/** One word of the prompt: its lower-cased text, its span in the original text, its token positions. */
export interface WordTokens {
  readonly word: string;
  readonly start: number;
  readonly end: number;
  /** Positions in `ids` (the start token is position 0). */
  readonly tokenIndices: readonly number[];
}

export interface Encoding {
  readonly ids: number[];
  /** Tokens before padding, start and end tokens included. */
  readonly length: number;
  /** The prompt's words whose tokens all fit in maxLength, in order. */
  readonly words: WordTokens[];
}

/** A prompt before truncation: its tokens (without start/end) and its words. */
interface Analysis {
  readonly tokens: number[];
  readonly words: WordTokens[];
}

const CACHE_LIMIT = 50_000;

export class ClipTokenizer {
  readonly startId: number;
  readonly endId: number;
  readonly padId: number;
  /** Merge pairs "a b", rank = index. */
  readonly merges: readonly string[];
  private readonly encoder: ReadonlyMap<string, number>;
  private readonly decoder = new Map<number, string>();
  private readonly bpe: BpeMerger;
  // Piece text -> ids; prompts repeat words, so this makes batches of prompts cheap.
  private readonly cache = new Map<string, readonly number[]>();

  constructor(files: ClipTokenizerFiles) {
    const { vocab, vocabSource, mergesSource } = files;
    const need = (token: string, why: string): number => {
      const id = vocab.get(token);
      if (id === undefined) throw new ClipTokenizerError(vocabSource, `lacks ${JSON.stringify(token)} (${why})`);
      return id;
    };
    for (const [token, id] of vocab) {
      const other = this.decoder.get(id);
      if (other !== undefined) throw new ClipTokenizerError(vocabSource, `id ${id} is given to both ${JSON.stringify(other)} and ${JSON.stringify(token)}`);
      this.decoder.set(id, token);
    }
    this.startId = need(START_TOKEN, 'the start token');
    this.endId = need(END_TOKEN, 'the end token');
    this.padId = need(files.padToken ?? END_TOKEN, 'the pad token');
    for (const symbol of BYTE_SYMBOL_ORDER) {
      need(symbol, 'a byte symbol');
      need(symbol + END_OF_WORD, 'a byte symbol at a word end');
    }
    // Every merge result must be a token, so encoding can never meet an unknown piece.
    files.merges.forEach((pair, rank) => {
      const parts = pair.split(' ');
      if (parts.length !== 2 || !parts[0] || !parts[1]) throw new ClipTokenizerError(mergesSource, `merge ${rank} is ${JSON.stringify(pair)}, not "a b"`);
      if (!vocab.has(parts[0] + parts[1])) {
        throw new ClipTokenizerError(mergesSource, `merge ${rank} "${pair}" makes ${JSON.stringify(parts[0] + parts[1])}, which is not in ${vocabSource}`);
      }
    });
    this.encoder = new Map(vocab);
    this.merges = Object.freeze([...files.merges]);
    this.bpe = new BpeMerger(this.merges);
  }

  /** A diffusers/transformers `tokenizer/` folder (vocab.json, merges.txt). */
  static fromFolder(dir: string): ClipTokenizer {
    return new ClipTokenizer(readTokenizerFolder(dir));
  }

  /** OpenAI's bpe_simple_vocab_16e6.txt.gz. */
  static fromBpeFile(path: string): ClipTokenizer {
    return new ClipTokenizer(readBpeFile(path));
  }

  get vocabSize(): number {
    return this.encoder.size;
  }

  tokenToId(token: string): number | undefined {
    return this.encoder.get(token);
  }

  idToToken(id: number): string | undefined {
    return this.decoder.get(id);
  }

  /** Start token, the prompt's tokens, end token; truncated to maxLength keeping the end token. */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const maxLength = options.maxLength ?? CLIP_MAX_LENGTH;
    const pad = options.pad ?? true;
    if (!(Number.isInteger(maxLength) || (maxLength === Infinity && !pad)) || maxLength < 2) {
      throw new RangeError(`encode: maxLength must be an integer ≥ 2 (Infinity only with pad: false), got ${maxLength}`);
    }
    const { tokens, words } = this.analyze(text);
    const kept = Math.min(tokens.length, maxLength - 2);
    const ids = [this.startId, ...tokens.slice(0, kept), this.endId];
    const length = ids.length;
    if (pad) while (ids.length < maxLength) ids.push(this.padId);
    return { ids, length, words: words.filter((w) => w.tokenIndices.at(-1)! <= kept) };
  }

  /**
   * The position of the last token of `word` (one word, or several in a row: "teddy bear") in
   * encode(text).ids; `occurrence` picks a later occurrence (0 = first). Case-insensitive.
   */
  wordTokenIndex(text: string, word: string, occurrence = 0, options: { maxLength?: number } = {}): number {
    if (!Number.isInteger(occurrence) || occurrence < 0) throw new RangeError(`wordTokenIndex: occurrence must be an integer ≥ 0, got ${occurrence}`);
    const wanted = preTokenize(normalizeText(word)).filter((p) => p.kind === 'letters' || p.kind === 'digit').map((p) => p.text);
    if (wanted.length === 0) throw new Error(`wordTokenIndex: ${JSON.stringify(word)} has no word to look for`);
    const { words } = this.analyze(text);
    const target = wanted.join(' ');
    let found = 0;
    for (let i = 0; i + wanted.length <= words.length; i++) {
      const here = words.slice(i, i + wanted.length);
      if (here.map((w) => w.word).join(' ') !== target) continue;
      if (found++ === occurrence) return this.checkFits(here.at(-1)!, word, text, options.maxLength);
    }
    if (found === 0) {
      const list = words.slice(0, 30).map((w) => w.word).join(', ') + (words.length > 30 ? ', …' : '');
      throw new Error(`wordTokenIndex: the word ${JSON.stringify(word)} is not in the prompt ${JSON.stringify(text)} (its words: ${list || 'none'})`);
    }
    throw new Error(`wordTokenIndex: ${JSON.stringify(word)} occurs ${found} time(s) in ${JSON.stringify(text)}, so there is no occurrence ${occurrence} (counting from 0)`);
  }

  /**
   * The position of the last token of the word that ends at or before character offset `end`
   * (a UTF-16 index into `text`), as FastComposer captions mark a subject's noun phrase.
   */
  tokenIndexAtCharEnd(text: string, end: number, options: { maxLength?: number } = {}): number {
    if (!Number.isInteger(end) || end < 0 || end > text.length) {
      throw new RangeError(`tokenIndexAtCharEnd: end must be an integer in [0, ${text.length}], got ${end}`);
    }
    const { words } = this.analyze(text);
    let last: WordTokens | undefined;
    for (const w of words) if (w.end <= end) last = w;
    if (!last) throw new Error(`tokenIndexAtCharEnd: no word of ${JSON.stringify(text)} ends at or before character ${end}`);
    return this.checkFits(last, last.word, text, options.maxLength);
  }

  /** Text of token ids; start, end and pad tokens are left out unless skipSpecial is false. */
  decode(ids: readonly number[], options: { skipSpecial?: boolean } = {}): string {
    const skipSpecial = options.skipSpecial ?? true;
    const bytes: number[] = [];
    ids.forEach((id, i) => {
      const token = this.decoder.get(id);
      if (token === undefined) throw new RangeError(`decode: id ${id} at position ${i} is not in the vocabulary`);
      const special = id === this.startId || id === this.endId || id === this.padId;
      if (special && skipSpecial) return;
      const body = token.endsWith(END_OF_WORD) ? token.slice(0, -END_OF_WORD.length) : token;
      for (const ch of body) {
        const b = special ? undefined : byteOfSymbol(ch);
        if (b === undefined) bytes.push(...Buffer.from(ch, 'utf8'));
        else bytes.push(b);
      }
      if (body !== token) bytes.push(0x20);
    });
    return Buffer.from(bytes).toString('utf8').trim();
  }

  /** Writes vocab.json + merges.txt (and the small configs) as a diffusers `tokenizer/` folder. */
  save(dir: string): void {
    writeTokenizerFolder(dir, this.encoder, this.merges, this.decoder.get(this.padId)!);
  }

  /** Tokens and words of a prompt, untruncated; word positions count the start token. */
  private analyze(text: string): Analysis {
    if (typeof text !== 'string') throw new TypeError(`expected the prompt as a string, got ${typeof text}`);
    const tokens: number[] = [];
    const words: { word: string; start: number; end: number; tokenIndices: number[] }[] = [];
    let previous: { kind: string; end: number } | undefined;
    for (const piece of preTokenize(normalizeText(text))) {
      const ids = this.pieceIds(piece.text);
      const positions = ids.map((_, i) => tokens.length + 1 + i);
      tokens.push(...ids);
      const current = words.at(-1);
      if (piece.kind === 'digit' && previous?.kind === 'digit' && previous.end === piece.start && current) {
        // A number is one word made of one token per digit.
        current.word += piece.text;
        current.end = piece.end;
        current.tokenIndices.push(...positions);
      } else if (piece.kind === 'letters' || piece.kind === 'digit') {
        words.push({ word: piece.text, start: piece.start, end: piece.end, tokenIndices: positions });
      }
      previous = piece;
    }
    return { tokens, words };
  }

  private pieceIds(piece: string): readonly number[] {
    const cached = this.cache.get(piece);
    if (cached) return cached;
    let ids: number[];
    if (piece === START_TOKEN) ids = [this.startId];
    else if (piece === END_TOKEN) ids = [this.endId];
    else ids = this.bpe.apply(toByteSymbols(piece)).map((token) => this.encoder.get(token)!);
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, ids);
    return ids;
  }

  private checkFits(word: WordTokens, query: string, text: string, maxLength = CLIP_MAX_LENGTH): number {
    const last = word.tokenIndices.at(-1)!;
    if (last >= maxLength - 1) {
      throw new Error(`${JSON.stringify(query)} in ${JSON.stringify(text)} ends at token ${last}, past the ${maxLength}-token limit (the end token takes position ${maxLength - 1})`);
    }
    return last;
  }
}
