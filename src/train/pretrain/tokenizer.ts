// The tokenizer of a pretrained model: an existing folder named by the config, the one already in
// the output folder (so every stage and every resume uses the same ids), or a byte-level BPE
// trained here from the training captions.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { trainClipTokenizer } from '../../models/clip-tokenizer-train.js';
import { ClipTokenizer } from '../../models/clip-tokenizer.js';
import { readAnnotation } from '../data/ffhq-wild.js';
import type { TokenizerSettings } from './config.js';

/** The captions of `ids`, read a few dozen files at a time. */
export async function readCaptions(root: string, ids: readonly string[]): Promise<string[]> {
  const captions: string[] = [];
  for (let i = 0; i < ids.length; i += 64) {
    const chunk = await Promise.all(ids.slice(i, i + 64).map((id) => readAnnotation(root, id)));
    for (const a of chunk) captions.push(a.caption);
  }
  return captions;
}

export interface PreparedTokenizer {
  tokenizer: ClipTokenizer;
  /** 'folder' (the config's), 'existing' (the output folder's) or 'trained'. */
  source: 'folder' | 'existing' | 'trained';
  note: string;
}

/** The tokenizer for a run; a newly trained one is written to <outputDir>/tokenizer. */
export async function prepareTokenizer(settings: TokenizerSettings, outputDir: string, dataRoot: string, ids: readonly string[]): Promise<PreparedTokenizer> {
  if (settings.folder) return { tokenizer: ClipTokenizer.fromFolder(settings.folder), source: 'folder', note: `tokenizer from ${settings.folder}` };
  const dir = join(outputDir, 'tokenizer');
  if (existsSync(join(dir, 'vocab.json'))) {
    const tokenizer = ClipTokenizer.fromFolder(dir);
    return { tokenizer, source: 'existing', note: `tokenizer from ${dir} (${tokenizer.vocabSize} tokens)` };
  }
  const captions = await readCaptions(dataRoot, ids);
  const trained = trainClipTokenizer(captions, { minWordCount: settings.minWordCount, maxMerges: settings.maxMerges });
  // Written beside, then renamed into place: a crash never leaves half a tokenizer behind.
  const temp = `${dir}.${process.pid}.tmp`;
  rmSync(temp, { recursive: true, force: true });
  trained.tokenizer.save(temp);
  mkdirSync(outputDir, { recursive: true });
  rmSync(dir, { recursive: true, force: true }); // a folder without vocab.json is no tokenizer
  renameSync(temp, dir);
  const split = trained.splitWords ? `; ${trained.splitWords} of them still split (maxMerges reached)` : '';
  return {
    tokenizer: trained.tokenizer,
    source: 'trained',
    note: `trained a tokenizer of ${trained.tokenizer.vocabSize} tokens from ${captions.length} captions (${trained.frequentWords} words seen ≥ ${settings.minWordCount} times${split}) → ${dir}`,
  };
}
