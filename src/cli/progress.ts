// Progress of long work on stderr: a bar on a terminal, a few plain lines in logs.
import cliProgress from 'cli-progress';

export interface ProgressReporter {
  update(done: number, total: number, note?: string): void;
  stop(): void;
}

export function progressReporter(label: string, quiet = false): ProgressReporter {
  if (quiet) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} |{bar}| {value}/{total} {note} ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(done, total, note = '') {
        if (!started) bar.start(total, 0, { note });
        started = true;
        bar.update(done, { note });
      },
      stop: () => started && bar.stop(),
    };
  }
  let lastTenth = -1;
  return {
    update(done, total, note = '') {
      const tenth = Math.floor((10 * done) / total);
      if (tenth === lastTenth) return;
      lastTenth = tenth;
      process.stderr.write(`${label}: ${done}/${total} ${note}\n`);
    },
    stop() {},
  };
}
