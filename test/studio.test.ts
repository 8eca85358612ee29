// The web studio (web/) in a real headless Chromium against a real `moa serve` server on the tiny
// model, with a token: upload by picker and by drag-and-drop, bind words, generate with live
// progress, swap with the same seed, morph with the frame slider, routing-map overlays, the
// gallery's reproduce and download, cancel, and the API's 4xx messages shown beside their
// controls. Screenshots go to test-artifacts/studio/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { type RunningServer, startServer } from '../src/server/app.js';
import { client, SERVER_MODEL_GUIDANCE, type TinyServerModel, writeTinyServerModel } from './server-fixture.js';
import { REPO_ROOT } from './tiny-sd.js';

const CHROMIUM = process.env.MOA_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(REPO_ROOT, 'test-artifacts', 'studio');
const TOKEN = 'studio-test-token';
const WAIT = 30_000;

const noBrowser = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (install Debian's chromium package, or set MOA_CHROMIUM)`;

/** The steps share one page and go on from each other, so after a failure the rest are skipped. */
let failed: string | null = null;
function step(name: string, body: () => Promise<void>): void {
  test(name, { skip: noBrowser }, async (t) => {
    if (failed) return t.skip(`an earlier step failed: ${failed}`);
    try {
      await body();
      assert.deepEqual(pageErrors, [], 'the studio threw no uncaught error');
    } catch (error) {
      failed = name;
      await shot(`failed-${name.split(':')[0]!.replace(/\W+/g, '-')}`).catch(() => {});
      throw error;
    }
  });
}

/** Uncaught errors of the studio's scripts. */
const pageErrors: string[] = [];
let tmp: string;
let fixture: TinyServerModel;
let server: RunningServer;
let browser: Browser;
let page: Page;
let api: ReturnType<typeof client>;

before(async () => {
  if (noBrowser) return;
  tmp = mkdtempSync(join(tmpdir(), 'moa-studio-'));
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  fixture = await writeTinyServerModel(tmp);
  server = await startServer({
    model: fixture.model,
    moa: fixture.moa,
    precision: 'fp32',
    device: 'cpu',
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    out: join(tmp, 'out'),
    maxQueue: 4,
    maxSteps: 50,
    maxBatch: 2,
    maxSide: 64,
    maxUploadBytes: 2 ** 20,
    previewEvery: 1,
  });
  api = client(server.url, TOKEN);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  context.setDefaultTimeout(WAIT);
  page = await context.newPage();
  page.on('pageerror', (error) => pageErrors.push(error.stack ?? error.message));
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

/** The decoded RGB pixels of a file the server serves. */
async function pixels(url: string): Promise<Buffer> {
  return sharp(await api.bytes(url)).removeAlpha().raw().toBuffer();
}

/** The newest jobs, as the API lists them. */
async function jobs(): Promise<any[]> {
  return (await api.get('/api/jobs')).body.jobs;
}

const waitForStatus = (text: string | RegExp) => page.locator('#status-text').filter({ hasText: text }).waitFor();

/** Records, in the page, every progress value and preview the studio shows from now on. */
async function watchProgress(): Promise<void> {
  // Compiled without the DOM's types: code run in the page reaches the window as globalThis.
  await page.evaluate(() => {
    const inPage = globalThis as any;
    const seen = (inPage.__seen = { progress: [] as string[], previews: 0 });
    const bar = inPage.document.querySelector('#progress');
    new inPage.MutationObserver(() => seen.progress.push(`${bar.getAttribute('value')}/${bar.getAttribute('max')}`)).observe(bar, { attributes: true });
    const preview = inPage.document.querySelector('#preview-image');
    new inPage.MutationObserver(() => seen.previews++).observe(preview, { attributes: true, attributeFilter: ['src'] });
  });
}
const seenProgress = () => page.evaluate(() => (globalThis as any).__seen as { progress: string[]; previews: number });

step('the studio asks for a token, then takes it from ?token= and clears it from the address bar', async () => {
  await page.goto(server.url + '/');
  await page.getByRole('textbox', { name: 'Access token' }).waitFor();
  assert.match(await page.getByRole('alert').first().innerText(), /needs a token/);
  await page.goto(`${server.url}/?token=${TOKEN}`);
  await page.getByText(/MoA · fp32 on cpu/).waitFor();
  assert.ok(!page.url().includes('token'), `the token stays out of the address bar: ${page.url()}`);
  assert.equal(await page.getByRole('textbox', { name: 'Access token' }).isVisible(), false);
  assert.equal(await page.getByLabel('Guidance', { exact: true }).inputValue(), String(SERVER_MODEL_GUIDANCE), "the model's default guidance");
});

step('photos are uploaded by the file picker and by drag-and-drop; a file that is no image is refused with the API message', async () => {
  await page.getByLabel('Choose reference photos').setInputFiles([fixture.references[0]!, fixture.references[1]!]);
  await page.getByRole('img', { name: 'Photo 2' }).waitFor();
  const dropped = await page.evaluateHandle(
    ({ files }) => {
      const inPage = globalThis as any;
      const transfer = new inPage.DataTransfer();
      for (const { name, base64 } of files) transfer.items.add(new inPage.File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], name, { type: 'image/png' }));
      return transfer;
    },
    { files: [{ name: 'dropped.png', base64: readFileSync(fixture.references[2]!).toString('base64') }, { name: 'notes.png', base64: Buffer.from('not an image').toString('base64') }] },
  );
  await page.locator('#dropzone').dispatchEvent('drop', { dataTransfer: dropped });
  await page.getByRole('img', { name: 'Photo 3' }).waitFor();
  const refusal = page.locator('#subjects .field-error');
  await refusal.waitFor();
  assert.match(await refusal.innerText(), /^notes\.png: .*(PNG|JPEG|WebP)/);
  assert.equal((await api.get('/api/uploads')).body.uploads.length, 3);
  await shot('1-uploaded');
});

step('binding photos to words marks the words in the prompt, each subject in its colour', async () => {
  await page.getByRole('textbox', { name: 'Prompt', exact: true }).fill('a man and his dog in the park');
  await page.getByLabel('Word for photo 1').selectOption('man');
  await page.getByLabel('Word for photo 2').selectOption('dog');
  const marks = page.locator('#prompt-mirror mark');
  await marks.nth(1).waitFor();
  assert.deepEqual(await marks.allInnerTexts(), ['man', 'dog']);
  const classes = await marks.evaluateAll((nodes) => nodes.map((n) => n.className));
  assert.notEqual(classes[0], classes[1]);
  assert.match((await page.locator('#bound-words').textContent()) ?? '', /man ← photo 1[\s\S]*dog ← photo 2/);

  const seed = page.getByLabel('Seed', { exact: true });
  const before = await seed.inputValue();
  await page.getByRole('button', { name: 'Random seed' }).click();
  assert.notEqual(await seed.inputValue(), before);
  await seed.fill('1234');
  await page.getByLabel('Steps').fill('2');
  await page.getByLabel('Width').fill('16');
  await page.getByLabel('Height').fill('16');
  await page.getByLabel('Subject guidance', { exact: true }).fill('5');
  await page.getByLabel('Subject guidance only where routed').check();
});

step('the API refuses bad input with a message beside the control: steps over the limit, a word no longer in the prompt', async () => {
  await page.getByLabel('Steps').fill('500');
  await page.getByRole('button', { name: 'Generate' }).click();
  const stepsError = page.locator('[data-field="steps"] .field-error');
  await stepsError.waitFor();
  assert.match(await stepsError.innerText(), /'steps' must be <= 50/);
  assert.equal(await page.getByLabel('Steps').getAttribute('aria-invalid'), 'true');
  await shot('2-error-steps');
  await page.getByLabel('Steps').fill('2');

  await page.getByRole('textbox', { name: 'Prompt', exact: true }).fill('a man in the park');
  assert.match((await page.locator('#bound-words').textContent()) ?? '', /dog ← photo 2 \(not in the prompt\)/);
  await page.getByRole('button', { name: 'Generate' }).click();
  const wordError = page.locator('#subjects .field-error');
  await wordError.waitFor();
  assert.match(await wordError.innerText(), /the word "dog" is not in the prompt/);
  assert.equal(await page.locator('.photo.invalid').count(), 1);
  assert.equal(await page.locator('.photo.invalid').getAttribute('data-word'), 'dog');
  assert.equal(await page.getByLabel('Word for photo 2').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByLabel('Word for photo 1').getAttribute('aria-invalid'), null);
  await shot('3-error-word');
  await page.getByRole('textbox', { name: 'Prompt', exact: true }).fill('a man and his dog in the park');
  assert.equal((await jobs()).length, 0, 'refused requests queue nothing');
});

step('generate: live progress and previews, then the image with its routing maps as an overlay', async () => {
  await watchProgress();
  await page.getByRole('button', { name: 'Generate' }).click();
  await waitForStatus('Done');
  const image = page.getByRole('img', { name: /^Generated image/ });
  await image.waitFor();
  const seen = await seenProgress();
  assert.ok(seen.progress.includes('1/2'), `progress seen: ${seen.progress.join(', ')}`);
  assert.ok(seen.previews >= 1, 'a preview was shown while it ran');

  const [job] = await jobs();
  assert.equal(job.status, 'succeeded');
  assert.deepEqual(
    { seed: job.parameters.seed, steps: job.parameters.steps, width: job.parameters.width, subjects: job.parameters.subjects.map((s: any) => s.word) },
    { seed: 1234, steps: 2, width: 16, subjects: ['man', 'dog'] },
  );
  assert.deepEqual([job.parameters.subjectGuidance, job.parameters.subjectGuidanceArea], [5, 'routing']);
  assert.equal(await image.evaluate((img: any) => img.naturalWidth), 16);
  assert.ok((await image.getAttribute('src'))!.startsWith(`${job.results[0].url}?token=`));

  // Maps: the mean routing map is laid over the image; a layer and the opacity can be chosen.
  const overlay = page.locator('#map-overlay');
  await overlay.waitFor();
  const layer = page.getByLabel('Map layer');
  const options = await layer.locator('option').allInnerTexts();
  const routing = job.maps.filter((m: any) => m.kind === 'routing');
  assert.equal(options.length, 1 + job.maps.length, `options: ${options.join(' | ')}`);
  assert.ok(options.includes('Attention of “dog”'));
  const chosen = routing[1];
  await layer.selectOption(chosen.url);
  assert.match(await layer.locator('option:checked').innerText(), new RegExp(`^Routing: \\w+ [\\d.]+, ${chosen.layerKind}-attention$`));
  assert.ok((await overlay.getAttribute('src'))!.startsWith(chosen.url));
  assert.equal(await overlay.evaluate((img: any) => img.complete && img.naturalWidth), 16);
  await page.getByLabel('Map opacity').fill('0.4');
  assert.equal(await overlay.evaluate((img) => (globalThis as any).getComputedStyle(img).opacity), '0.4');
  await page.getByLabel('Map opacity').fill('1');
  await shot('4-generated-maps');
  await layer.selectOption({ label: 'No map' });
  assert.equal(await overlay.isVisible(), false);
});

step('swap keeps the seed: the base is the generated image, the alternative uses the other photo', async () => {
  const [generated] = await jobs();
  await page.getByLabel('Subject to swap').selectOption('man');
  await page.getByRole('form', { name: 'Swap a subject' }).getByRole('radio', { name: 'Photo 3' }).check();
  await page.getByRole('button', { name: 'Swap', exact: true }).click();
  await waitForStatus('Done');
  await page.getByRole('button', { name: 'Show alternative 1' }).waitFor();
  const [swap] = await jobs();
  assert.equal(swap.kind, 'swap');
  assert.equal(swap.parameters.seed, generated.parameters.seed);
  assert.deepEqual([swap.parameters.subjectGuidance, swap.parameters.subjectGuidanceArea], [5, 'routing'], 'a swap keeps the settings of the job it starts from');
  assert.deepEqual(swap.parameters.alternatives, [[{ word: 'man', upload: (await api.get('/api/uploads')).body.uploads[0].id }]]);
  const [base, alternative] = await Promise.all(swap.results.map((r: any) => pixels(r.url)));
  assert.deepEqual(base, await pixels(generated.results[0].url), 'same seed and subjects: the base is the generated image');
  assert.notDeepEqual(alternative, base, 'the swapped subject changes the image');
  await page.getByRole('button', { name: 'Show alternative 1' }).click();
  assert.ok((await page.locator('#result-image').getAttribute('src'))!.startsWith(swap.results[1].url));
  await shot('5-swap');
});

step('morph: the slider scrubs through the frames', async () => {
  await page.getByLabel('Subject to morph').selectOption('man');
  await page.getByRole('form', { name: 'Morph between subjects' }).getByRole('radio', { name: 'Photo 3' }).check();
  await page.getByLabel('Frames').fill('3');
  await page.getByRole('button', { name: 'Morph', exact: true }).click();
  await waitForStatus('Done');
  const slider = page.getByLabel('Morph frame');
  await slider.waitFor();
  const [morph] = await jobs();
  assert.equal(morph.kind, 'morph');
  assert.deepEqual(morph.results.map((r: any) => r.alpha), [0, 0.5, 1]);
  assert.equal(await slider.getAttribute('max'), '2');
  for (const frame of [2, 1]) {
    await slider.fill(String(frame));
    assert.ok((await page.locator('#result-image').getAttribute('src'))!.startsWith(morph.results[frame].url));
    assert.match(await page.locator('#morph-alpha').innerText(), new RegExp(`frame ${frame + 1} of 3`));
  }
  const frames = await Promise.all(morph.results.map((r: any) => pixels(r.url)));
  assert.notDeepEqual(frames[0], frames[2], 'the two ends differ');
  await shot('6-morph');
});

step('gallery: lists the jobs with their parameters; reproduce gives the same image; parameters download as JSON', async () => {
  const cards = page.getByRole('article');
  await cards.nth(2).waitFor();
  const listed = await jobs();
  assert.deepEqual(await cards.evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-job-id'))), listed.map((j) => j.id));
  const generated = listed.find((j) => j.kind === 'generate');
  const card = page.getByRole('article', { name: `Job ${generated.id}` });
  assert.match(await card.innerText(), /seed\s*1234\s+steps\s*2\s+[\s\S]*subjects\s*man, dog/);

  const download = page.waitForEvent('download');
  await card.getByRole('button', { name: 'Download JSON' }).click();
  const file = await (await download).path();
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), generated.parameters);

  await card.getByRole('button', { name: 'Copy parameters' }).click();
  await card.getByRole('button', { name: 'Copied' }).waitFor();
  assert.deepEqual(JSON.parse(await page.evaluate(() => (globalThis as any).navigator.clipboard.readText())), generated.parameters);

  await card.getByRole('button', { name: 'Reproduce' }).click();
  await waitForStatus('Done');
  await cards.nth(3).waitFor();
  const [again] = await jobs();
  assert.deepEqual(again.parameters, generated.parameters);
  assert.deepEqual(await pixels(again.results[0].url), await pixels(generated.results[0].url), 'the same parameters make the same image');
  await shot('7-gallery');
});

step('a reloaded studio follows the running job, and cancel stops it', async () => {
  await page.getByLabel('Steps').fill('50');
  await page.getByRole('button', { name: 'Generate' }).click();
  await waitForStatus(/Step [1-9]\d* of 50/);
  await page.reload();
  await waitForStatus(/Step [1-9]\d* of 50/);
  await page.getByRole('button', { name: 'Cancel' }).click();
  await waitForStatus('Cancelled');
  const [job] = await jobs();
  assert.equal(job.status, 'cancelled');
  assert.ok(job.progress.step < 50);
  assert.equal(await page.getByRole('button', { name: 'Generate' }).isEnabled(), true);
});
