// Runs one job at a time from the studio: submits it, follows its events (queue position,
// progress, previews) and lets the user cancel it.
import { api, jobEvents } from './api.js';
import { $ } from './dom.js';

const FINISHED = ['succeeded', 'failed', 'cancelled'];

export class Runner {
  /** `hooks`: onPreview(image, step, total), onFinished(job), onBusy(busy). */
  constructor(hooks) {
    this.hooks = hooks;
    this.id = null;
    this.events = null;
    $('#cancel').addEventListener('click', () => this.cancel());
  }

  get busy() {
    return this.id !== null;
  }

  /** Submits a job request; an ApiError (e.g. a 400 naming a field) is thrown to the caller. */
  async run(request) {
    if (this.busy) throw new Error('a job is already running: wait for it or cancel it');
    this.#setBusy('Submitting…');
    let accepted;
    try {
      accepted = await api.submit(request);
    } catch (error) {
      this.#setIdle('Ready');
      throw error;
    }
    this.follow(accepted.id);
    return accepted;
  }

  /** Follows a job's event stream until it finishes. */
  follow(id) {
    this.id = id;
    this.#setBusy('Waiting…');
    const events = (this.events = jobEvents(id));
    const data = (event) => JSON.parse(event.data);
    events.addEventListener('state', (e) => this.#showJob(data(e)));
    events.addEventListener('status', (e) => this.#showStatus(data(e)));
    events.addEventListener('progress', (e) => this.#showProgress(data(e)));
    events.addEventListener('preview', (e) => {
      const { image, step, total } = data(e);
      this.hooks.onPreview(image, step, total);
    });
    for (const end of ['done', 'failed', 'cancelled']) events.addEventListener(end, (e) => this.#finish(data(e)));
    events.addEventListener('error', () => {
      // The browser retries a dropped stream by itself; a closed one (401, 404) is not retried.
      if (events.readyState === EventSource.CLOSED && this.events === events) this.#lost(id);
    });
  }

  async cancel() {
    if (!this.id) return;
    $('#cancel').disabled = true;
    $('#status-text').textContent = 'Cancelling…';
    try {
      await api.cancel(this.id);
    } catch (error) {
      $('#status-text').textContent = `Could not cancel: ${error.message}`;
    }
  }

  #showJob(job) {
    if (FINISHED.includes(job.status)) return; // its end event follows at once
    this.#showStatus(job);
    if (job.status === 'running') this.#showProgress(job.progress);
    if (job.preview) this.hooks.onPreview(job.preview.image, job.preview.step, job.progress.total);
  }

  #showStatus({ status, position }) {
    $('#status-text').textContent = status === 'queued' ? `Queued${position > 0 ? ` (${position} ahead)` : ' (next)'}` : 'Running…';
  }

  #showProgress({ step, total }) {
    const bar = $('#progress');
    bar.max = total;
    bar.value = step;
    $('#status-text').textContent = `Step ${step} of ${total}`;
  }

  #finish(job) {
    this.events?.close();
    this.events = null;
    const text = job.status === 'succeeded' ? 'Done' : job.status === 'cancelled' ? 'Cancelled' : `Failed: ${job.error?.message ?? 'unknown error'}`;
    if (job.status === 'succeeded') $('#progress').value = $('#progress').max;
    this.#setIdle(text);
    this.hooks.onFinished(job);
  }

  /** The stream closed before the job ended: read the job once and report where it stands. */
  async #lost(id) {
    this.events = null;
    try {
      const job = await api.job(id);
      if (FINISHED.includes(job.status)) return this.#finish(job);
      this.#setIdle(`Lost the connection to job ${id} (still ${job.status}); it will appear in the gallery when it ends`);
    } catch (error) {
      this.#setIdle(`Lost the connection to job ${id}: ${error.message}`);
    }
  }

  #setBusy(text) {
    $('#status-text').textContent = text;
    $('#progress').value = 0;
    $('#cancel').disabled = false;
    this.hooks.onBusy(true);
  }

  #setIdle(text) {
    this.id = null;
    $('#status-text').textContent = text;
    $('#cancel').disabled = true;
    this.hooks.onBusy(false);
  }
}
