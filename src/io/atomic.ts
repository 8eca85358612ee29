// Writing files so that a failure never destroys what was there: write beside the target under a
// temporary name, flush, then rename over it (atomic on one filesystem).
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Runs `write` on a fresh temporary file beside `path`, then moves it into place. */
export function writeAtomically(path: string, write: (fd: number) => void): void {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(temp, 'wx');
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(temp, path);
  } catch (error) {
    if (fd !== null) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // never created, or already gone
    }
    throw error;
  }
}

/** Writes a whole buffer to `path` atomically. */
export function writeFileAtomically(path: string, data: Uint8Array): void {
  writeAtomically(path, (fd) => {
    for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done);
  });
}
