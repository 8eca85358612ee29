// What the server tests and bench/serve-load.ts run against: the tiny Stable Diffusion saved as a
// diffusers folder with a tiny CLIP image encoder in <model>/image_encoder, MoA weights (shaken so
// subjects and routing vary), and a few reference images.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { saveDiffusersFolder } from '../src/io/diffusers.js';
import { writePng } from '../src/io/image.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { CLIPVisionModelWithProjection } from '../src/models/clip-vision.js';
import { MoA } from '../src/moa/moa.js';
import { saveMoAWeights } from '../src/moa/weights.js';
import { disposeStableDiffusion } from '../src/pipelines/stable-diffusion.js';
import { Generator, noGrad, randn, tidy } from '../src/tensor/index.js';
import { TINY_VISION_CONFIG, tinyStableDiffusion } from './tiny-sd.js';

export interface TinyServerModel {
  model: string;
  moa: string;
  /** RGB reference images (PNG), 24×20. */
  references: string[];
}

/** The model's own default guidance (not SD's 7.5), so the tests see the server use it. */
export const SERVER_MODEL_GUIDANCE = 4;

export async function writeTinyServerModel(dir: string, seed = 5): Promise<TinyServerModel> {
  const model = join(dir, 'model');
  const moaFile = join(dir, 'moa.safetensors');
  const sd = tinyStableDiffusion(seed);
  sd.defaultGuidance = SERVER_MODEL_GUIDANCE;
  saveDiffusersFolder(sd, model);
  const moa = new MoA(sd.unet, { imageEmbedDim: TINY_VISION_CONFIG.projection_dim }, { generator: new Generator(seed + 1) });
  const g = new Generator(seed + 2);
  noGrad(() => tidy(() => moa.moaParameters().forEach((p) => p.add_(randn(p.shape, { generator: g }).mul(0.3)))));
  saveMoAWeights(moaFile, moa, { baseModel: 'tiny' });
  moa.dispose();
  disposeStableDiffusion(sd);

  const encoderDir = join(model, 'image_encoder');
  mkdirSync(encoderDir, { recursive: true });
  const encoder = new CLIPVisionModelWithProjection(TINY_VISION_CONFIG, { generator: new Generator(seed + 3) });
  writeFileSync(join(encoderDir, 'config.json'), JSON.stringify({ ...TINY_VISION_CONFIG, model_type: 'clip_vision_model' }));
  saveSafetensors(join(encoderDir, 'model.safetensors'), tidy(() => encoder.stateDict()));
  encoder.dispose();

  const references: string[] = [];
  const pixels = new Generator(seed + 4);
  for (let i = 0; i < 3; i++) {
    const path = join(dir, `ref-${i}.png`);
    const image = randn([1, 3, 24, 20], { generator: pixels }).sigmoid();
    await writePng(path, image);
    image.dispose();
    references.push(path);
  }
  return { model, moa: moaFile, references };
}

/** A small client for a running server. */
export function client(base: string, token?: string) {
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const request = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(base + path, { ...init, headers: { ...auth, ...(init.headers as Record<string, string> | undefined) } });
    const text = await res.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, headers: res.headers, body };
  };
  return {
    get: (path: string) => request(path),
    delete: (path: string) => request(path, { method: 'DELETE' }),
    post: (path: string, json: unknown) => request(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) }),
    postRaw: (path: string, body: string, contentType = 'application/json') => request(path, { method: 'POST', headers: { 'content-type': contentType }, body }),
    upload: (data: Uint8Array, name = 'image.png') => {
      const form = new FormData();
      form.append('file', new Blob([data]), name);
      return request('/api/uploads', { method: 'POST', body: form });
    },
    /** The bytes of a file the server serves. */
    bytes: async (path: string) => Buffer.from(await (await fetch(base + path, { headers: auth })).arrayBuffer()),
    /** A job's server-sent events until the stream ends. */
    events: (id: string) => readEvents(`${base}/api/jobs/${id}/events`, auth),
    /** Waits until a job has finished (polling), and returns it. */
    async finished(id: string): Promise<any> {
      for (;;) {
        const { body } = await request(`/api/jobs/${id}`);
        if (['succeeded', 'failed', 'cancelled'].includes(body.status)) return body;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

export interface ServerEvent {
  event: string;
  data: any;
}

/** Reads a text/event-stream response to its end; `onEvent` sees each event as it arrives. */
export async function readEvents(url: string, headers: Record<string, string> = {}, onEvent?: (e: ServerEvent) => void): Promise<ServerEvent[]> {
  const res = await fetch(url, { headers });
  if (res.status !== 200) throw new Error(`events: ${res.status} ${await res.text()}`);
  const events: ServerEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event === undefined || data === undefined) continue; // a keep-alive comment
      const e = { event, data: JSON.parse(data) };
      events.push(e);
      onEvent?.(e);
    }
  }
  return events;
}
