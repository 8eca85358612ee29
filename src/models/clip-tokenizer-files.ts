// Reading and writing CLIP tokenizer files: a diffusers/transformers `tokenizer/` folder
// (vocab.json + merges.txt) and OpenAI's original bpe_simple_vocab_16e6.txt.gz.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { findDuplicateKey } from '../io/json-keys.js';
import { BYTE_SYMBOL_ORDER, END_OF_WORD } from './clip-tokenizer-bpe.js';
import { END_TOKEN, START_TOKEN } from './clip-tokenizer-text.js';

/** A problem with a tokenizer file: the message starts with the file's path. */
export class ClipTokenizerError extends Error {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.name = 'ClipTokenizerError';
    this.path = path;
  }
}

/** What a tokenizer is made of, with where each part came from (for error messages). */
export interface ClipTokenizerFiles {
  readonly vocab: ReadonlyMap<string, number>;
  /** "a b" pairs, rank = index. */
  readonly merges: readonly string[];
  readonly padToken?: string;
  readonly vocabSource: string;
  readonly mergesSource: string;
}

/** CLIP's merge count: the 49152-token BPE vocabulary less the 256 bytes and 2 special tokens. */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;
const MERGES_HEADER = '#version: 0.2';

function readText(path: string, what: string): Buffer {
  if (!existsSync(path)) throw new ClipTokenizerError(path, `${what} not found`);
  if (!statSync(path).isFile()) throw new ClipTokenizerError(path, `${what} is not a file`);
  return readFileSync(path);
}

/** Parses merge lines (1-based `firstLine` for messages); each must be two symbols. */
function parseMerges(lines: readonly string[], path: string, firstLine: number): string[] {
  const merges: string[] = [];
  const seen = new Set<string>();
  lines.forEach((line, i) => {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 2 || parts[0] === '') {
      throw new ClipTokenizerError(path, `line ${firstLine + i}: expected a merge "a b", got ${JSON.stringify(line)}`);
    }
    const pair = `${parts[0]} ${parts[1]}`;
    if (seen.has(pair)) throw new ClipTokenizerError(path, `line ${firstLine + i}: merge "${pair}" appears twice`);
    seen.add(pair);
    merges.push(pair);
  });
  return merges;
}

/** A diffusers/transformers `tokenizer/` folder: vocab.json, merges.txt, optional pad token. */
export function readTokenizerFolder(dir: string): ClipTokenizerFiles {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ClipTokenizerError(dir, 'tokenizer folder not found');
  const vocabPath = join(dir, 'vocab.json');
  const mergesPath = join(dir, 'merges.txt');
  const vocab = parseVocab(readText(vocabPath, 'vocab.json').toString('utf8'), vocabPath);
  const lines = readText(mergesPath, 'merges.txt').toString('utf8').split('\n');
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  const hasHeader = lines[0]?.startsWith('#version') ?? false;
  const merges = parseMerges(hasHeader ? lines.slice(1) : lines, mergesPath, hasHeader ? 2 : 1);
  const padToken = readPadToken(join(dir, 'special_tokens_map.json'));
  return { vocab, merges, padToken, vocabSource: vocabPath, mergesSource: mergesPath };
}

function parseVocab(text: string, path: string): Map<string, number> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ClipTokenizerError(path, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ClipTokenizerError(path, 'expected a JSON object mapping each token to its id');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate) throw new ClipTokenizerError(path, `token ${JSON.stringify(duplicate.key)} appears twice`);
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(json)) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) {
      throw new ClipTokenizerError(path, `token ${JSON.stringify(token)} has id ${JSON.stringify(id)}; ids must be non-negative integers`);
    }
    vocab.set(token, id as number);
  }
  return vocab;
}

/** The pad token named by special_tokens_map.json (a string or {content}), if the file is there. */
function readPadToken(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ClipTokenizerError(path, `not valid JSON (${(err as Error).message})`, { cause: err });
  }
  const pad = (json as { pad_token?: unknown } | null)?.pad_token;
  if (pad === undefined || pad === null) return undefined;
  if (typeof pad === 'string') return pad;
  const content = (pad as { content?: unknown }).content;
  if (typeof content === 'string') return content;
  throw new ClipTokenizerError(path, 'pad_token must be a string or an object with a string "content"');
}

/**
 * OpenAI's gzipped merges file. Like CLIP: skip the header line, take the next 48894 merges,
 * and number the vocabulary as bytes, bytes + '</w>', each merge joined, then the two specials.
 */
export function readBpeFile(path: string): ClipTokenizerFiles {
  let text: string;
  try {
    text = gunzipSync(readText(path, 'BPE merges file')).toString('utf8');
  } catch (err) {
    if (err instanceof ClipTokenizerError) throw err;
    throw new ClipTokenizerError(path, `not a gzip file (${(err as Error).message})`, { cause: err });
  }
  const lines = text.split('\n');
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  if (lines.length < CLIP_MERGE_COUNT + 1) {
    throw new ClipTokenizerError(path, `holds ${Math.max(0, lines.length - 1)} merge line(s); CLIP needs ${CLIP_MERGE_COUNT} after the header`);
  }
  const merges = parseMerges(lines.slice(1, CLIP_MERGE_COUNT + 1), path, 2);
  const tokens = [
    ...BYTE_SYMBOL_ORDER,
    ...BYTE_SYMBOL_ORDER.map((s) => s + END_OF_WORD),
    ...merges.map((m) => m.replace(' ', '')),
    START_TOKEN,
    END_TOKEN,
  ];
  const vocab = new Map<string, number>();
  tokens.forEach((token, id) => {
    if (vocab.has(token)) throw new ClipTokenizerError(path, `token ${JSON.stringify(token)} would get two ids (${vocab.get(token)} and ${id})`);
    vocab.set(token, id);
  });
  return { vocab, merges, vocabSource: path, mergesSource: path };
}

/**
 * Writes a transformers/diffusers tokenizer folder: vocab.json (ordered by id), merges.txt with
 * its "#version" header, and the small configs that let CLIPTokenizer.from_pretrained load it.
 */
export function writeTokenizerFolder(dir: string, vocab: ReadonlyMap<string, number>, merges: readonly string[], padToken: string): void {
  mkdirSync(dir, { recursive: true });
  const entries = [...vocab].sort((a, b) => a[1] - b[1]);
  const vocabJson = `{\n${entries.map(([token, id]) => `  ${JSON.stringify(token)}: ${id}`).join(',\n')}\n}\n`;
  writeFileSync(join(dir, 'vocab.json'), vocabJson);
  writeFileSync(join(dir, 'merges.txt'), `${MERGES_HEADER}\n${merges.join('\n')}\n`);
  const special = { bos_token: START_TOKEN, eos_token: END_TOKEN, unk_token: END_TOKEN, pad_token: padToken };
  writeFileSync(join(dir, 'special_tokens_map.json'), `${JSON.stringify(special, null, 2)}\n`);
  const config = { tokenizer_class: 'CLIPTokenizer', model_max_length: 77, do_lower_case: true, ...special };
  writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}
