import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { Generator } from '../src/tensor/index.js';
import { disposeSample, loadSample, readImageIds } from '../src/train/data/ffhq-wild.js';
import { disposeBatch, FfhqWildLoader } from '../src/train/data/loader.js';
import { parseNpy } from '../src/train/data/npy.js';
import { mulberry32 } from '../src/train/data/rng.js';
import { readNpySegMap } from '../src/train/data/segmap.js';
import {
  ATTRIBUTES,
  CLASS_ATTRIBUTES,
  CLASSES,
  encodeNpyInt32,
  type Identity,
  imageSpec,
  planWorld,
  type RGB,
  renderReference,
  renderScene,
  sampleIdentities,
  SCENE_KINDS,
  type SceneSpec,
  TEST_TEMPLATES,
  TIMES,
  TRAIN_TEMPLATES,
  WORLD_WORDS,
  writeWorld,
  templateText,
} from '../src/world/index.js';
import { clipTokenizer } from './tiny-sd.js';

const tmp = mkdtempSync(join(tmpdir(), 'moa-world-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// A small world: 30 images of 64 px (6 held out), 48 identities.
const SETTINGS = { images: 30, seed: 11, size: 64, identities: 48, heldOutFraction: 0.2, workers: 2 };
const root = join(tmp, 'world');

/** Every file under `dir`, relative path → bytes. */
function tree(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(dir, path), readFileSync(path));
    }
  };
  walk(dir);
  return files;
}

interface Annotation {
  caption: string;
  segments: { id: number; bbox: number[]; end: number; coco_label: string; identity: string; class: string }[];
  scene: { kind: string; time: string; props: string[] };
  template: string;
}

const annotationOf = (id: string): Annotation => JSON.parse(readFileSync(join(root, id.slice(0, 5), `${id}.json`), 'utf8')) as Annotation;
const idsIn = (file: string) => readFileSync(join(root, file), 'utf8').split('\n').filter((l) => l.length > 0);

before(async () => {
  await writeWorld({ out: root, ...SETTINGS });
});

describe('identities', () => {
  test('deterministic, all different, within the vocabulary, split per class', () => {
    const a = sampleIdentities(5, 400, { heldOutFraction: 0.25 });
    assert.deepEqual(a, sampleIdentities(5, 400, { heldOutFraction: 0.25 }));
    assert.notDeepEqual(a, sampleIdentities(6, 400, { heldOutFraction: 0.25 }));
    const keys = new Set(a.map((x) => `${x.class}:${JSON.stringify(x.attributes)}`));
    assert.equal(keys.size, a.length, 'no two identities look the same');
    for (const x of a) {
      assert.match(x.id, CLASSES.indexOf(x.class) < 4 ? /^p\d{5}$/ : /^a\d{5}$/);
      assert.deepEqual(Object.keys(x.attributes).sort(), Object.keys(CLASS_ATTRIBUTES[x.class]).sort());
      for (const [name, value] of Object.entries(x.attributes)) assert.ok(ATTRIBUTES[name]!.includes(value), `${name}=${value}`);
      if (x.attributes.hair === 'bald') assert.equal(x.attributes.hair_colour, 'none');
      if ('fur_pattern' in x.attributes) assert.equal(x.attributes.fur_pattern === 'plain', x.attributes.marking_colour === 'none');
    }
    assert.equal(new Set(a.map((x) => x.id)).size, a.length);
    for (const cls of CLASSES) {
      const members = a.filter((x) => x.class === cls);
      const held = members.filter((x) => x.split === 'test').length;
      assert.ok(members.length > 30, `${cls}: ${members.length}`);
      assert.equal(held, Math.round(members.length * 0.25), `${cls} held out`);
    }
    assert.throws(() => sampleIdentities(1, 0), /positive integer/);
    assert.throws(() => sampleIdentities(1, 10, { heldOutFraction: 1 }), /\[0, 1\)/);
  });
});

describe('rendering', () => {
  const people = sampleIdentities(3, 60);
  const plan = planWorld({ seed: 3, size: 96, images: 40, identities: 60, heldOutFraction: 0.2 });
  const specs: SceneSpec[] = Array.from({ length: 12 }, (_, i) => imageSpec(plan, i));
  const FLAT: RGB[] = [
    [255, 0, 255],
    [0, 255, 1],
    [1, 0, 254],
    [255, 254, 0],
  ];

  test('every scene kind and time renders, with 1 to 4 subjects', () => {
    const kinds = new Set<string>();
    const counts = new Set<number>();
    for (let i = 0; i < 40; i++) {
      const spec = imageSpec(plan, i);
      kinds.add(spec.kind);
      counts.add(spec.subjects.length);
    }
    assert.ok(kinds.size >= 6, `kinds seen: ${[...kinds].join(', ')}`);
    assert.deepEqual([...counts].sort(), [1, 2, 3, 4]);
    for (const kind of SCENE_KINDS) {
      for (const time of TIMES) {
        const r = renderScene({ kind, time, seed: 1, subjects: [{ identity: people[0]!, x: 0.5, depth: 0.3, facing: 'right' }] }, { size: 64 });
        assert.ok(r.scene.props.length >= 3, `${kind} at ${time}: ${r.scene.props.join(', ')}`);
        assert.ok(r.segMap.some((l) => l === 1));
      }
    }
  });

  test('the map is exactly where each subject is painted', () => {
    for (const spec of specs) {
      const r = renderScene(spec, { size: 96 });
      const flat = renderScene(spec, { size: 96, flatColours: FLAT });
      assert.deepEqual(flat.segMap, r.segMap, 'recolouring a subject never moves the map');
      const n = spec.subjects.length;
      const present = new Array<number>(n + 1).fill(0);
      for (let i = 0; i < r.segMap.length; i++) {
        const label = r.segMap[i]!;
        present[label]!++;
        const px = [flat.rgb[3 * i], flat.rgb[3 * i + 1], flat.rgb[3 * i + 2]];
        const flatLabel = FLAT.findIndex((c) => c[0] === px[0] && c[1] === px[1] && c[2] === px[2]) + 1;
        // Subject k's colour shows exactly on label k; elsewhere the scene is untouched.
        assert.equal(flatLabel, label, `pixel ${i}`);
        if (label === 0) assert.deepEqual([r.rgb[3 * i], r.rgb[3 * i + 1], r.rgb[3 * i + 2]], px, `background pixel ${i}`);
      }
      for (let k = 1; k <= n; k++) {
        assert.ok(present[k]! > 10, `subject ${k} shows`);
        // The bbox is the map's extent.
        const [h1, w1, h2, w2] = r.segments[k - 1]!.bbox;
        let [y0, x0, y1, x1] = [Infinity, Infinity, -1, -1];
        r.segMap.forEach((l, i) => {
          if (l !== k) return;
          const [y, x] = [Math.floor(i / 96), i % 96];
          [y0, x0, y1, x1] = [Math.min(y0, y), Math.min(x0, x), Math.max(y1, y + 1), Math.max(x1, x + 1)];
        });
        assert.deepEqual([h1, w1, h2, w2], [y0, x0, y1, x1]);
      }
    }
  });

  test('nearer subjects cover farther ones; the same spec renders the same at any call', () => {
    const [a, b] = [people[0]!, people[1]!];
    const far = { identity: a, x: 0.5, depth: 0.9, facing: 'left' as const };
    const near = { identity: b, x: 0.5, depth: 0.1, facing: 'right' as const };
    const r = renderScene({ kind: 'room', time: 'day', seed: 4, subjects: [far, near] }, { size: 96 });
    const alone = renderScene({ kind: 'room', time: 'day', seed: 4, subjects: [far] }, { size: 96 });
    let covered = 0;
    alone.segMap.forEach((l, i) => {
      if (l !== 1) return;
      if (r.segMap[i] === 2) covered++;
      else assert.equal(r.segMap[i], 1, 'where the near subject is absent the far one shows');
    });
    assert.ok(covered > 0, 'the near subject stands in front of the far one');
    assert.deepEqual(renderScene({ kind: 'room', time: 'day', seed: 4, subjects: [far, near] }, { size: 96 }), r);
    assert.throws(() => renderScene({ kind: 'moon' as 'room', time: 'day', seed: 1, subjects: [] }), /scene kind must be one of/);
    assert.throws(() => renderScene({ kind: 'room', time: 'day', seed: 1, subjects: [{ ...far, x: 2 }] }), /x and depth/);
    assert.throws(() => renderScene({ kind: 'room', time: 'day', seed: 1, subjects: [] }, { size: 8 }), /size must be/);
    const first = Object.keys(a.attributes)[0]!;
    const bad: Identity = { ...a, attributes: { ...a.attributes, [first]: 'green-ish' } };
    assert.throws(() => renderScene({ kind: 'room', time: 'day', seed: 1, subjects: [{ ...far, identity: bad }] }), new RegExp(`attribute '${first}' must be one of`));
    const extra: Identity = { ...a, attributes: { ...a.attributes, wings: 'yes' } };
    assert.throws(() => renderScene({ kind: 'room', time: 'day', seed: 1, subjects: [{ ...far, identity: extra }] }), /has no attribute 'wings'/);
  });

  test('references: the identity alone, centred, on a plain background', () => {
    for (const identity of people.slice(0, 12)) {
      const ref = renderReference(identity, { size: 80 });
      const background = [ref.rgb[0], ref.rgb[1], ref.rgb[2]];
      let count = 0;
      let sumX = 0;
      for (let i = 0; i < ref.mask.length; i++) {
        const same = ref.rgb[3 * i] === background[0] && ref.rgb[3 * i + 1] === background[1] && ref.rgb[3 * i + 2] === background[2];
        if (!ref.mask[i]) assert.ok(same, 'outside the mask is background');
        else {
          count++;
          sumX += i % 80;
        }
      }
      assert.ok(count > 0.12 * 80 * 80, `${identity.class} fills the frame (${count} px)`);
      assert.ok(Math.abs(sumX / count - 40) < 8, `${identity.class} is centred`);
    }
  });
});

describe('captions', () => {
  test('end offsets sit just after each class word; all words are world words', () => {
    const tokenizer = clipTokenizer();
    const words = new Set(WORLD_WORDS);
    for (const id of [...idsIn('image_ids_train.txt'), ...idsIn('image_ids_test.txt')]) {
      const a = annotationOf(id);
      for (const w of a.caption.split(' ')) assert.ok(words.has(w), `'${w}' in '${a.caption}'`);
      for (const s of a.segments) {
        assert.equal(a.caption.slice(s.end - s.class.length, s.end), s.class, a.caption);
        assert.ok(s.end === a.caption.length || a.caption[s.end] === ' ', 'the word ends there');
        assert.equal(a.caption[s.end - s.class.length - 1], ' ', 'the word starts there');
        assert.equal(s.coco_label, s.class);
        const ids = tokenizer.encode(a.caption).ids;
        assert.equal(tokenizer.decode([ids[tokenizer.tokenIndexAtCharEnd(a.caption, s.end)]!]), s.class);
      }
      assert.equal(new Set(a.segments.map((s) => s.identity)).size, a.segments.length, 'no identity twice in one image');
    }
  });
});

describe('the written world', () => {
  test('same seed, same bytes; another seed, other images', async () => {
    const again = join(tmp, 'again');
    await writeWorld({ out: again, ...SETTINGS, workers: 1 });
    const [a, b] = [tree(root), tree(again)];
    assert.deepEqual([...a.keys()], [...b.keys()]);
    for (const [path, bytes] of a) assert.ok(bytes.equals(b.get(path)!), `${path} differs`);
    const other = join(tmp, 'other');
    await writeWorld({ out: other, ...SETTINGS, images: 3, seed: 12 });
    assert.ok(!readFileSync(join(other, '00000', '0000000.jpg')).equals(a.get(join('00000', '0000000.jpg'))!));
  });

  test('layout, manifest and references', () => {
    const world = JSON.parse(readFileSync(join(root, 'world.json'), 'utf8'));
    assert.equal(world.format, 'moa-world');
    assert.equal(world.version, 1);
    assert.equal(world.complete, true);
    assert.deepEqual([world.seed, world.size, world.images, world.identities], [11, 64, 30, 48]);
    assert.equal(world.counts.trainImages + world.counts.testImages, 30);
    const identities = JSON.parse(readFileSync(join(root, 'identities.json'), 'utf8')) as Identity[];
    assert.equal(identities.length, 48);
    assert.deepEqual(identities, sampleIdentities(11, 48, { heldOutFraction: 0.2 }));
    for (const identity of identities) assert.ok(existsSync(join(root, 'references', `${identity.id}.png`)), identity.id);
    assert.equal(readdirSync(join(root, 'references')).length, 48);
  });

  test('files match the renderer: the .npy map round-trips, the JPEG is close', async () => {
    const plan = planWorld({ seed: 11, size: 64, images: 30, identities: 48, heldOutFraction: 0.2 });
    for (const index of [0, 7, 29]) {
      const id = String(index).padStart(7, '0');
      const r = renderScene(imageSpec(plan, index), { size: 64 });
      const npyPath = join(root, id.slice(0, 5), `${id}.npy`);
      const bytes = readFileSync(npyPath);
      const parsed = parseNpy(bytes);
      assert.deepEqual([parsed.dtype, parsed.shape], ['int32', [64, 64]]);
      assert.equal((10 + bytes.readUInt16LE(8)) % 64, 0, 'header padded to 64 bytes');
      assert.deepEqual((await readNpySegMap(npyPath)).labels, r.segMap);
      const { data, info } = await sharp(join(root, id.slice(0, 5), `${id}.jpg`)).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height, info.channels], [64, 64, 3]);
      let diff = 0;
      for (let i = 0; i < data.length; i++) diff += Math.abs(data[i]! - r.rgb[i]!);
      assert.ok(diff / data.length < 4, `JPEG mean error ${diff / data.length}`);
      assert.deepEqual(annotationOf(id).segments, JSON.parse(JSON.stringify(r.segments)));
    }
    const odd = parseNpy(encodeNpyInt32(Int32Array.from([0, 1, 2, -3, 4, 5]), 2, 3));
    assert.deepEqual([odd.shape, [...odd.data]], [[2, 3], [0, 1, 2, -3, 4, 5]]);
  });

  test('the split never leaks: held-out identities and unseen templates only in test images', () => {
    const identities = JSON.parse(readFileSync(join(root, 'identities.json'), 'utf8')) as Identity[];
    const splitOf = new Map(identities.map((x) => [x.id, x.split]));
    const [train, test] = [idsIn('image_ids_train.txt'), idsIn('image_ids_test.txt')];
    assert.deepEqual([train.length, test.length], [24, 6]);
    assert.equal(new Set([...train, ...test]).size, 30);
    for (const [ids, split, templates] of [
      [train, 'train', TRAIN_TEMPLATES],
      [test, 'test', TEST_TEMPLATES],
    ] as const) {
      for (const id of ids) {
        const a = annotationOf(id);
        assert.ok((templates as readonly string[]).includes(a.template), `${id}: template ${a.template}`);
        for (const s of a.segments) assert.equal(splitOf.get(s.identity), split, `${id}: ${s.identity}`);
      }
    }
    const texts = (list: readonly string[]) => new Set(list.map(templateText));
    assert.ok([...texts(TEST_TEMPLATES)].every((t) => !texts(TRAIN_TEMPLATES).has(t)));
    assert.ok(!TRAIN_TEMPLATES.some((t) => (TEST_TEMPLATES as readonly string[]).includes(t)));
  });

  test('the FFHQ-wild reader and loader read it', async () => {
    const tokenizer = clipTokenizer();
    const ids = await readImageIds(root);
    assert.equal(ids.length, 24);
    const options = { resolution: 64, latentResolution: 64, cropSize: 28, dropCaption: 0, keepSubject: 1 };
    for (const id of ids.slice(0, 6)) {
      const a = annotationOf(id);
      const sample = await loadSample(root, id, tokenizer, mulberry32(1), new Generator(1), options);
      assert.equal(sample.caption, a.caption);
      assert.equal(sample.subjects.length, Math.min(4, a.segments.length));
      for (const [i, s] of sample.subjects.entries()) {
        assert.equal(tokenizer.decode([sample.inputIds[s.tokenIndex]!]), a.segments[i]!.class);
        assert.ok(s.mask.sum().item() > 0, `${id}: subject ${i + 1} has a mask`);
      }
      disposeSample(sample);
    }
    const loader = new FfhqWildLoader(root, ids, tokenizer, { batchSize: 4, seed: 1, maxBroken: 0, ...options });
    const batch = await loader.nextBatch();
    assert.deepEqual(batch.images.shape, [4, 3, 64, 64]);
    disposeBatch(batch);
    loader.close();
  });

  test('refuses other folders, resumes an interrupted write, replaces only with --force', async () => {
    const foreign = join(tmp, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    await assert.rejects(writeWorld({ out: foreign, ...SETTINGS }), /holds no moa world/);
    await assert.rejects(writeWorld({ out: join(foreign, 'notes.txt'), ...SETTINGS }), /is a file/);

    const copy = join(tmp, 'resume');
    await writeWorld({ out: copy, ...SETTINGS });
    const complete = tree(copy);
    assert.equal((await writeWorld({ out: copy, ...SETTINGS })).rendered, 0, 'a complete world is left alone');
    // Interrupt: drop some files and the finished flag, as a killed run would leave it.
    rmSync(join(copy, '00000', '0000003.jpg'));
    rmSync(join(copy, '00000', '0000017.npy'));
    rmSync(join(copy, 'references', readdirSync(join(copy, 'references'))[0]!));
    rmSync(join(copy, 'image_ids_test.txt'));
    const world = JSON.parse(readFileSync(join(copy, 'world.json'), 'utf8'));
    writeFileSync(join(copy, 'world.json'), JSON.stringify({ ...world, complete: false, counts: null }));
    const resumed = await writeWorld({ out: copy, ...SETTINGS });
    assert.deepEqual([resumed.rendered, resumed.kept], [2, 28]);
    const after = tree(copy);
    assert.deepEqual([...after.keys()], [...complete.keys()]);
    for (const [path, bytes] of complete) assert.ok(bytes.equals(after.get(path)!), `${path} differs after resuming`);

    await assert.rejects(writeWorld({ out: copy, ...SETTINGS, seed: 99, images: 4 }), /different world.*--force/);
    const replaced = await writeWorld({ out: copy, ...SETTINGS, seed: 99, images: 4, force: true });
    assert.equal(replaced.rendered, 4);
    assert.ok(!existsSync(join(copy, '00000', '0000004.jpg')), 'the old world is gone');
    await assert.rejects(writeWorld({ out: join(tmp, 'x'), ...SETTINGS, identities: 3 }), /no identity is held out/);
    await assert.rejects(writeWorld({ out: join(tmp, 'y'), ...SETTINGS, heldOutFraction: 1.5 }), /held-out fraction/);
  });
});
