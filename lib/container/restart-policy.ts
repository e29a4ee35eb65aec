/**
 * Restart policies (Docker's `--restart`): whether a container whose program exited is started again by its owner,
 * and after how long. The rules are Docker's:
 *
 * - `no` (default): never.
 * - `on-failure[:N]`: when the program exited with a status other than 0, at most N times when N is given (and not 0).
 * - `always`: whatever the status.
 * - `unless-stopped`: the same as `always` here. (Docker's two differ only when its daemon starts: `always`
 *   containers come back after a reboot even if a user had stopped them. berth has no daemon: nothing restarts
 *   containers after a reboot.)
 *
 * A container stopped or killed on purpose (`stop()`, `kill()` with SIGKILL or its stop signal, `remove()`, and the
 * `berth` commands doing these) is never restarted by its policy, whatever the policy: the stopping process marks it
 * in the container's directory (a file, so that any process sharing the state root can) and the owner reads the mark
 * when the program exits. A start clears the mark.
 *
 * Restarts are delayed as Docker delays them: 100 ms before the first, doubling before each next one up to one
 * minute; a program that ran for 10 seconds or more starts the series again at 100 ms.
 * @module
 */
import { closeSync, existsSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { BerthError } from '../errors.js';
import { native } from '../native.js';

/** A container's restart policy (Docker's HostConfig.RestartPolicy). */
export interface RestartPolicy {
  /** `no` (default), `on-failure`, `always` or `unless-stopped`. */
  name: 'no' | 'on-failure' | 'always' | 'unless-stopped';
  /** With `on-failure`: at most this many restarts (counted since the last start by hand); 0 or absent: no limit. */
  maximumRetryCount?: number;
}

/** Validates a restart policy option. */
export const restartPolicySchema = z
  .strictObject({
    name: z.enum(['no', 'on-failure', 'always', 'unless-stopped']),
    maximumRetryCount: z.number().int().nonnegative().optional(),
  })
  .refine((p) => !p.maximumRetryCount || p.name === 'on-failure', {
    message: 'maximumRetryCount can only be used with the on-failure policy (as Docker)',
    path: ['maximumRetryCount'],
  });

/** The policy containers get when none is given. */
export const NO_RESTART: RestartPolicy = { name: 'no' };

/** Docker's restart delays. */
export const RESTART_BACKOFF = {
  /** Before the first restart of a series. */
  initialMs: 100,
  /** The longest delay. */
  maxMs: 60_000,
  /** A program that ran at least this long starts a new series. */
  resetAfterMs: 10_000,
} as const;

/** What the decision to restart looks at. */
export interface ExitFacts {
  exitCode: number;
  /** A user stopped or killed it on purpose (or removed it). */
  manuallyStopped: boolean;
  /** Restarts the policy made since the last start by hand. */
  restartCount: number;
}

/** Whether the policy restarts a container whose program exited so. */
export function shouldRestart(policy: RestartPolicy | undefined, facts: ExitFacts): boolean {
  if (!policy || policy.name === 'no' || facts.manuallyStopped) return false;
  if (policy.name === 'always' || policy.name === 'unless-stopped') return true;
  const max = policy.maximumRetryCount ?? 0;
  return facts.exitCode !== 0 && (max === 0 || facts.restartCount < max);
}

/** The delay before the next restart, given the previous delay (0 before the first) and how long the program ran. */
export function nextBackoff(previousMs: number, ranMs: number): number {
  const base = ranMs >= RESTART_BACKOFF.resetAfterMs ? 0 : previousMs;
  return base === 0 ? RESTART_BACKOFF.initialMs : Math.min(base * 2, RESTART_BACKOFF.maxMs);
}

/** The mark a deliberate stop leaves in the container's directory. */
const STOPPED_MARK = 'stopped-by-user';

/** Records that a user stopped the container on purpose: its policy must not start it again. */
export function markStoppedByUser(containerDir: string): void {
  try {
    writeFileSync(join(containerDir, STOPPED_MARK), '', { mode: 0o600 });
  } catch {
    // the container is gone
  }
}

/** Whether a user stopped the container on purpose since it was last started. */
export function stoppedByUser(containerDir: string): boolean {
  return existsSync(join(containerDir, STOPPED_MARK));
}

/** Forgets a deliberate stop (the container is being started). */
export function clearStoppedByUser(containerDir: string): void {
  try {
    unlinkSync(join(containerDir, STOPPED_MARK));
  } catch {
    // not marked
  }
}

/**
 * Runs `f` holding the container's start lock (`start.lock` in its directory), so that two processes cannot both
 * start an exited container's process again. Waits up to 10 s for it.
 */
export async function withStartLock<T>(containerDir: string, f: () => T | Promise<T>): Promise<T> {
  const fd = openSync(join(containerDir, 'start.lock'), 'a', 0o600);
  try {
    const deadline = Date.now() + 10_000;
    while (!native.flock(fd, true)) {
      if (Date.now() > deadline) throw new BerthError('ERR_LOCK_TIMEOUT', `timed out waiting for ${containerDir}/start.lock`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return await f();
  } finally {
    closeSync(fd); // releases the lock
  }
}
