import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { after, describe, test } from 'node:test';
import { ClipTokenizer, ClipTokenizerError } from '../src/models/clip-tokenizer.js';

// dist/test/ -> the repository root; the shared data sits beside it.
const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bpePath = join(repoRoot, '..', 'shared', 'clip', 'bpe_simple_vocab_16e6.txt.gz');
const noVocab = !existsSync(bpePath) && `CLIP's vocabulary is not at ${bpePath}`;

const tmp = mkdtempSync(join(tmpdir(), 'moa-clip-tokenizer-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let dirCount = 0;
const newDir = () => join(tmp, `d${dirCount++}`);

const START = 49406;
const END = 49407;

/** GPT-2/CLIP's byte -> symbol map, written out here independently of the implementation. */
function byteSymbol(b: number): string {
  const printable = (x: number) => (x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff);
  if (printable(b)) return String.fromCharCode(b);
  let n = 0;
  for (let x = 0; x < b; x++) if (!printable(x)) n++;
  return String.fromCharCode(256 + n);
}
const symbols = (text: string) => [...Buffer.from(text, 'utf8')].map(byteSymbol).join('');
const allBytes = Array.from({ length: 256 }, (_, b) => byteSymbol(b));

describe('with CLIP’s real vocabulary', { skip: noVocab }, () => {
  const tok = noVocab ? (undefined as never) : ClipTokenizer.fromBpeFile(bpePath);
  const id = (token: string) => {
    const found = tok.tokenToId(token);
    assert.notEqual(found, undefined, `${JSON.stringify(token)} is in the vocabulary`);
    return found!;
  };
  const bare = (text: string) => tok.encode(text, { pad: false }).ids;

  test('the vocabulary is numbered as CLIP numbers it', () => {
    assert.equal(tok.vocabSize, 49408);
    assert.equal(tok.merges.length, 48894);
    assert.deepEqual([tok.startId, tok.endId, tok.padId], [START, END, END]);
    assert.equal(tok.idToToken(START), '<|startoftext|>');
    assert.equal(id('!'), 0); // the first printable byte
    assert.equal(id('!</w>'), 256);
    assert.equal(id(tok.merges[0]!.replace(' ', '')), 512);
  });

  test('"a photo of a cat" gives the known ids, padded with the end token', () => {
    const { ids, length, words } = tok.encode('a photo of a cat');
    assert.deepEqual(ids, [START, 320, 1125, 539, 320, 2368, ...new Array<number>(71).fill(END)]);
    assert.equal(length, 7);
    assert.deepEqual(words.map((w) => [w.word, w.start, w.end, w.tokenIndices]), [
      ['a', 0, 1, [1]],
      ['photo', 2, 7, [2]],
      ['of', 8, 10, [3]],
      ['a', 11, 12, [4]],
      ['cat', 13, 16, [5]],
    ]);
    assert.equal(bare('a sks dog')[2], 48136); // DreamBooth's rare token
  });

  test('punctuation: runs of it are one piece, each ends a word', () => {
    // ',' is byte 44: symbol number 44 - 33 = 11, so ',</w>' is 256 + 11.
    assert.equal(id(',</w>'), 267);
    assert.deepEqual(bare('Hello, world!'), [START, id('hello</w>'), 267, id('world</w>'), id('!</w>'), END]);
    assert.deepEqual(bare('wait...!?'), [START, id('wait</w>'), ...bare('...!?').slice(1, -1), END]);
    assert.equal(tok.decode(bare('wait...!?')), 'wait ...!?');
  });

  test('numbers are split one digit per token', () => {
    const digit = (d: number) => 256 + (0x30 - 0x21) + d; // '0'..'9' at word end
    const { ids, words } = tok.encode('In 2024, 3 dogs', { pad: false });
    assert.deepEqual(ids, [START, id('in</w>'), digit(2), digit(0), digit(2), digit(4), 267, digit(3), id('dogs</w>'), END]);
    assert.deepEqual(words.map((w) => [w.word, w.tokenIndices]), [['in', [1]], ['2024', [2, 3, 4, 5]], ['3', [7]], ['dogs', [8]]]);
  });

  test('contractions split off as CLIP does', () => {
    assert.deepEqual(bare("The man's dog isn't here"), [START, id('the</w>'), id('man</w>'), id("'s</w>"), id('dog</w>'), id('isn</w>'), id("'t</w>"), id('here</w>'), END]);
  });

  test('non-ASCII text goes through its UTF-8 bytes', () => {
    assert.deepEqual(bare('café'), [START, id(`${symbols('café')}</w>`), END]);
    assert.deepEqual(bare('🙂'), [START, id(`${symbols('🙂')}</w>`), END]);
    // Cross-checked with an independent implementation of CLIP's algorithm.
    assert.deepEqual(bare('naïve'), [START, id('na'), id(symbols('ï')), id('ve</w>'), END]);
    assert.deepEqual(bare('日本語'), [START, 39121, 44353, 34002, 508, END]);
    for (const word of ['日本語', '東京', 'naïve', 'Zürich']) {
      const tokens = bare(word).slice(1, -1).map((i) => tok.idToToken(i)!);
      assert.equal(tokens.join(''), `${symbols(word.toLowerCase())}</w>`, word);
    }
    const text = 'café naïve 🙂 日本語 東京 ñandú';
    assert.equal(tok.decode(tok.encode(text).ids), text);
  });

  test('whitespace is collapsed, case is lowered, accents are composed (NFC)', () => {
    const text = '  A   PHOTO\tof\n a CAT\u3000 ';
    const { ids, words } = tok.encode(text);
    assert.deepEqual(ids, tok.encode('a photo of a cat').ids);
    assert.deepEqual(words.map((w) => text.slice(w.start, w.end)), ['A', 'PHOTO', 'of', 'a', 'CAT']);
    const decomposed = 'Cafe\u0301 noir';
    assert.deepEqual(bare(decomposed), bare('café noir'));
    assert.deepEqual(tok.encode(decomposed).words.map((w) => [w.word, decomposed.slice(w.start, w.end)]), [['café', 'Cafe\u0301'], ['noir', 'noir']]);
    assert.deepEqual(bare(''), [START, END]);
    assert.deepEqual(bare(' \n\t '), [START, END]);
  });

  test('long prompts are truncated to 77, keeping the end token', () => {
    const text = Array.from({ length: 100 }, () => 'cat').join(' ');
    const { ids, length, words } = tok.encode(text);
    assert.equal(ids.length, 77);
    assert.equal(length, 77);
    assert.equal(ids[76], END);
    assert.equal(ids[75], 2368);
    assert.equal(words.length, 75);
    assert.deepEqual(tok.encode(text, { pad: false }).ids, ids);
    const short = tok.encode(text, { maxLength: 10 });
    assert.deepEqual(short.ids, [START, ...new Array<number>(8).fill(2368), END]);
    assert.throws(() => tok.encode('a', { maxLength: 1 }), RangeError);
    assert.throws(() => tok.encode('a', { maxLength: Infinity }), RangeError);
    assert.equal(tok.encode(text, { maxLength: Infinity, pad: false }).length, 102);
  });

  test('words are bound to the index of their last token', () => {
    const prompt = 'a man and a woman hiking';
    assert.equal(tok.wordTokenIndex(prompt, 'man'), 2);
    assert.equal(tok.wordTokenIndex(prompt, 'woman'), 5);
    assert.equal(tok.wordTokenIndex(prompt, 'WOMAN'), 5);
    assert.equal(tok.wordTokenIndex('A Man and a man', 'man', 1), 5);
    assert.equal(tok.wordTokenIndex('a teddy bear on a bed', 'teddy bear'), 3);
    // A word of several tokens: its last one; the next word follows it.
    const odd = 'a qwxzvk dog';
    const qwxzvk = tok.encode(odd).words[1]!;
    assert.ok(qwxzvk.tokenIndices.length > 1);
    assert.deepEqual(qwxzvk.tokenIndices, Array.from(qwxzvk.tokenIndices, (_, i) => 2 + i));
    assert.equal(tok.wordTokenIndex(odd, 'qwxzvk'), qwxzvk.tokenIndices.at(-1));
    assert.equal(tok.wordTokenIndex(odd, 'dog'), qwxzvk.tokenIndices.at(-1)! + 1);
    assert.equal(tok.wordTokenIndex('a naïve man', 'naïve'), 4);
    assert.equal(tok.wordTokenIndex('photo of a man, smiling', 'man'), 4);
  });

  test('a word that is not in the prompt is a clear error', () => {
    assert.throws(() => tok.wordTokenIndex('a man and a woman hiking', 'dog'), /the word "dog" is not in the prompt "a man and a woman hiking" \(its words: a, man, and, a, woman, hiking\)/);
    assert.throws(() => tok.wordTokenIndex('a man', 'ma'), /not in the prompt/);
    assert.throws(() => tok.wordTokenIndex('a man and a man', 'man', 2), /occurs 2 time\(s\).*no occurrence 2/);
    assert.throws(() => tok.wordTokenIndex('a man', ', !'), /has no word to look for/);
    const long = `${Array.from({ length: 80 }, () => 'cat').join(' ')} dog`;
    assert.throws(() => tok.wordTokenIndex(long, 'dog'), /past the 77-token limit/);
  });

  test('token index at a character offset (FastComposer captions)', () => {
    const caption = 'a man and a woman hiking';
    assert.equal(tok.tokenIndexAtCharEnd(caption, 5), 2); // just after "man"
    assert.equal(tok.tokenIndexAtCharEnd(caption, 17), 5); // just after "woman"
    assert.equal(tok.tokenIndexAtCharEnd(caption, 4), 1); // inside "man": the word before
    assert.equal(tok.tokenIndexAtCharEnd('the man, smiling', 7), 2);
    assert.throws(() => tok.tokenIndexAtCharEnd(caption, 0), /no word .* ends at or before character 0/);
    assert.throws(() => tok.tokenIndexAtCharEnd(caption, 99), RangeError);
  });

  test('decode', () => {
    const ids = tok.encode('A photo of a CAT, 4k!').ids;
    assert.equal(tok.decode(ids), 'a photo of a cat , 4 k !');
    assert.equal(tok.decode(bare('a cat'), { skipSpecial: false }), '<|startoftext|>a cat <|endoftext|>');
    assert.equal(tok.decode([]), '');
    assert.throws(() => tok.decode([320, 49408]), /id 49408 at position 1 is not in the vocabulary/);
  });

  test('save writes a diffusers folder that loads back identically', () => {
    const dir = newDir();
    tok.save(dir);
    assert.ok(readFileSync(join(dir, 'merges.txt'), 'utf8').startsWith('#version'));
    const vocabJson = JSON.parse(readFileSync(join(dir, 'vocab.json'), 'utf8')) as Record<string, number>;
    assert.equal(vocabJson['a</w>'], 320);
    const back = ClipTokenizer.fromFolder(dir);
    assert.equal(back.vocabSize, tok.vocabSize);
    assert.deepEqual(back.merges, tok.merges);
    assert.deepEqual([back.startId, back.endId, back.padId], [tok.startId, tok.endId, tok.padId]);
    for (let i = 0; i < tok.vocabSize; i++) assert.equal(back.idToToken(i), tok.idToToken(i));
    for (const text of ['a photo of a cat', 'Café 🙂 日本語, 2024!', "isn't it"]) assert.deepEqual(back.encode(text), tok.encode(text));
  });

  test('a thousand prompts tokenize quickly (cached BPE)', () => {
    const prompts = Array.from({ length: 1000 }, (_, i) => `a photo of person ${i} wearing a red hat near the river at sunset, highly detailed, style ${i % 13}`);
    const encoded = prompts.map((p) => tok.encode(p));
    assert.ok(encoded.every((e) => e.ids.length === 77 && e.ids[e.length - 1] === END));
  });
});

/** A tiny tokenizer folder: the 512 byte symbols, the given merges, the two special tokens. */
function writeTinyFolder(merges: string[], extra: { vocab?: Record<string, unknown>; mergesText?: string; specialTokensMap?: object } = {}): string {
  const dir = newDir();
  mkdirSync(dir);
  const tokens = [...allBytes, ...allBytes.map((s) => `${s}</w>`), ...merges.map((m) => m.replace(' ', '')), '<|startoftext|>', '<|endoftext|>'];
  const vocab = extra.vocab ?? Object.fromEntries(tokens.map((t, i) => [t, i]));
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(dir, 'merges.txt'), extra.mergesText ?? `#version: 0.2\n${merges.join('\n')}\n`);
  if (extra.specialTokensMap) writeFileSync(join(dir, 'special_tokens_map.json'), JSON.stringify(extra.specialTokensMap));
  return dir;
}

describe('with a tiny vocabulary', () => {
  test('merges apply by rank, not left to right', () => {
    const byRank = ClipTokenizer.fromFolder(writeTinyFolder(['a t</w>', 'c a', 'ca t</w>']));
    const names = (t: ClipTokenizer, text: string) => t.encode(text, { pad: false }).ids.slice(1, -1).map((i) => t.idToToken(i));
    assert.deepEqual(names(byRank, 'cat'), ['c', 'at</w>']);
    const leftFirst = ClipTokenizer.fromFolder(writeTinyFolder(['c a', 'ca t</w>', 'a t</w>']));
    assert.deepEqual(names(leftFirst, 'cat'), ['cat</w>']);
    assert.deepEqual(names(leftFirst, 'cacat'), ['ca', 'cat</w>']);
    const tiny = ClipTokenizer.fromFolder(writeTinyFolder([]));
    assert.equal(tiny.encode('cat').ids[0], tiny.startId);
    assert.equal(tiny.startId, 512);
  });

  test('the pad token comes from special_tokens_map.json when it names one', () => {
    const tok = ClipTokenizer.fromFolder(writeTinyFolder([], { specialTokensMap: { pad_token: { content: '!' } } }));
    const bang = tok.tokenToId('!')!;
    assert.equal(tok.padId, bang);
    const { ids, length } = tok.encode('hi', { maxLength: 8 });
    assert.deepEqual(ids.slice(length), [bang, bang, bang, bang]);
    const back = newDir();
    tok.save(back);
    assert.equal(ClipTokenizer.fromFolder(back).padId, bang);
  });

  test('missing or malformed files are errors that name the file', () => {
    const missing = join(tmp, 'nowhere');
    assert.throws(() => ClipTokenizer.fromFolder(missing), (e: unknown) => e instanceof ClipTokenizerError && e.message === `${missing}: tokenizer folder not found`);
    const noMerges = writeTinyFolder([]);
    rmSync(join(noMerges, 'merges.txt'));
    assert.throws(() => ClipTokenizer.fromFolder(noMerges), new RegExp(`merges\\.txt: merges\\.txt not found`));
    const noVocabDir = writeTinyFolder([]);
    rmSync(join(noVocabDir, 'vocab.json'));
    assert.throws(() => ClipTokenizer.fromFolder(noVocabDir), /vocab\.json: vocab\.json not found/);

    const folderError = (dir: string, pattern: RegExp) => assert.throws(() => ClipTokenizer.fromFolder(dir), (e: unknown) => e instanceof ClipTokenizerError && pattern.test(e.message));
    const badJson = writeTinyFolder([]);
    writeFileSync(join(badJson, 'vocab.json'), '{"a": 1,');
    folderError(badJson, /vocab\.json: not valid JSON/);
    folderError(writeTinyFolder([], { vocab: { a: 1.5 } }), /vocab\.json: token "a" has id 1\.5/);
    folderError(writeTinyFolder([], { vocab: ['a'] as unknown as Record<string, unknown> }), /vocab\.json: expected a JSON object/);
    const duplicated = writeTinyFolder([]);
    writeFileSync(join(duplicated, 'vocab.json'), readFileSync(join(duplicated, 'vocab.json'), 'utf8').replace('{', '{"<|endoftext|>": 1, '));
    folderError(duplicated, /vocab\.json: token "<\|endoftext\|>" appears twice/);
    folderError(writeTinyFolder([], { vocab: { '!': 0 } }), /vocab\.json: lacks "<\|startoftext\|>" \(the start token\)/);
    folderError(writeTinyFolder([], { specialTokensMap: { pad_token: '<pad>' } }), /vocab\.json: lacks "<pad>" \(the pad token\)/);
    folderError(writeTinyFolder([], { mergesText: '#version: 0.2\nc a\nc a t\n' }), /merges\.txt: line 3: expected a merge "a b", got "c a t"/);
    folderError(writeTinyFolder([], { mergesText: '#version: 0.2\nc a\nc a\n' }), /merges\.txt: line 3: merge "c a" appears twice/);
    folderError(writeTinyFolder([], { mergesText: '#version: 0.2\nx y\n' }), /merges\.txt: merge 0 "x y" makes "xy", which is not in .*vocab\.json/);
    const sameId = Object.fromEntries([...allBytes, ...allBytes.map((s) => `${s}</w>`), '<|startoftext|>', '<|endoftext|>'].map((t, i) => [t, Math.min(i, 512)]));
    folderError(writeTinyFolder([], { vocab: sameId }), /vocab\.json: id 512 is given to both "<\|startoftext\|>" and "<\|endoftext\|>"/);
  });

  test('a bad BPE file is an error that names it', () => {
    const missing = join(tmp, 'missing.txt.gz');
    assert.throws(() => ClipTokenizer.fromBpeFile(missing), new RegExp(`${missing}: BPE merges file not found`));
    const notGzip = join(tmp, 'plain.txt.gz');
    writeFileSync(notGzip, 'c a\n');
    assert.throws(() => ClipTokenizer.fromBpeFile(notGzip), /plain\.txt\.gz: not a gzip file/);
    const short = join(tmp, 'short.txt.gz');
    writeFileSync(short, gzipSync('#version: 0.2\nc a\n'));
    assert.throws(() => ClipTokenizer.fromBpeFile(short), /short\.txt\.gz: holds 1 merge line\(s\); CLIP needs 48894 after the header/);
  });
});
