// Ctrl-C for long commands: SIGINT aborts the work's signal (the work stops at its next check and
// saves what it must) instead of killing the process mid-write.

/** Runs `work` with Ctrl-C aborting the signal it is given. */
export async function interruptible<T>(work: (signal: AbortSignal) => Promise<T> | T): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
