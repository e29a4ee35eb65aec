/**
 * Exclusive advisory locks on files (flock), shared by processes using one state root or one host. The addon's
 * flock never blocks the event loop, so waiting polls with a short, growing delay.
 * @module
 */
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { BerthError } from '../errors.js';
import { native } from '../native.js';

/**
 * Runs `fn` holding an exclusive lock on `path` (created if missing, never deleted: removing it would let two
 * processes lock two different files). Its directory must exist.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T> | T, timeoutMs = 30_000): Promise<T> {
  const fh = await open(path, 'a', 0o600);
  try {
    const start = Date.now();
    let delay = 1;
    while (!native.flock(fh.fd, true)) {
      if (Date.now() - start > timeoutMs) throw new BerthError('ERR_LOCK_TIMEOUT', `timed out after ${timeoutMs} ms waiting for the lock ${path}`);
      await sleep(delay * (0.5 + Math.random()));
      delay = Math.min(delay * 2, 50);
    }
    return await fn();
  } finally {
    await fh.close(); // releases the lock
  }
}
