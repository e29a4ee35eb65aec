/**
 * File-level helpers shared by the cgroup drivers: reading and writing cgroup interface files with errors that name
 * the file and value, listing and signalling member processes, and removing cgroup directories (which the kernel
 * may refuse with EBUSY for a short while after the last task exited).
 * @module
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getSystemErrorMap } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { CgroupError } from '../../errors.js';

/** The errno name of a Node system error (`EBUSY`, `ENOENT`...), or `undefined` for anything else. */
export function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** `EBUSY (resource busy or locked)`: the errno name plus libuv's description, for error messages. */
export function describeErrno(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null;
  const name = errnoOf(err);
  if (name === undefined) return String(err);
  const description = typeof e?.errno === 'number' ? getSystemErrorMap().get(e.errno)?.[1] : undefined;
  return description === undefined ? name : `${name} (${description})`;
}

/**
 * Checks a cgroup or parent name: one non-empty path component that cannot climb out of the parent. Newlines and
 * NULs are refused too because cgroup interface files are line-oriented and paths are C strings.
 */
export function validateCgroupName(name: string, what = 'cgroup name'): void {
  if (name === '' || name === '.' || name.includes('/') || name.includes('..') || /[\n\0]/.test(name)) {
    throw new CgroupError(
      `cgroup: invalid ${what} ${JSON.stringify(name)}: it must be a single path component other than "." ` +
        `without "/", ".." or control characters`,
    );
  }
}

/** Reads a whole interface file, or `undefined` if it does not exist (controller not enabled, cgroup gone). */
export function readOptional(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENODEV') return undefined;
    throw new CgroupError(`cgroup: reading ${file} failed: ${describeErrno(err)}`, { cause: err });
  }
}

/** Reads a single-number file; `undefined` when the file is missing or does not hold a number. */
export function readNumber(file: string): number | undefined {
  const text = readOptional(file)?.trim();
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  return Number(text);
}

/**
 * Reads a "flat keyed" file (`key value` per line, e.g. cpu.stat, memory.events, cgroup.events) into a map of
 * numbers. Missing file → empty map. Lines whose value is not a number are skipped.
 */
export function readFlatKeyed(file: string): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of (readOptional(file) ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key !== undefined && value !== undefined && /^-?\d+$/.test(value)) result.set(key, Number(value));
  }
  return result;
}

/** Reads a space-separated word list such as cgroup.controllers; missing file → empty list. */
export function readWordList(file: string): string[] {
  return (readOptional(file) ?? '').split(/\s+/).filter((w) => w.length > 0);
}

/**
 * Writes `value` to an interface file in one write(2), which is what the kernel expects. Flag `w` would also
 * create a plain file on a normal filesystem (the v2 value tests use a temp dir as a fake hierarchy); on cgroupfs
 * a missing file is refused with EACCES, so a missing file is reported as such rather than as a permission problem.
 */
export function writeValue(file: string, value: string): void {
  try {
    fs.writeFileSync(file, value, { flag: 'w' });
  } catch (err) {
    const missing = fs.existsSync(file) ? '' : '; the file does not exist on this host';
    const reason = `${describeErrno(err)}${missing}`;
    throw new CgroupError(`cgroup: writing ${JSON.stringify(value)} to ${file} failed: ${reason}`, { cause: err });
  }
}

/** Creates a directory; returns true if this call created it, false if it already existed. */
export function mkdirIfMissing(dir: string): boolean {
  try {
    fs.mkdirSync(dir);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return false;
    throw new CgroupError(`cgroup: creating ${dir} failed: ${describeErrno(err)}`, { cause: err });
  }
}

/** Names of the child cgroups (subdirectories) of `dir`; empty when `dir` is gone. */
export function childDirs(dir: string): string[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw new CgroupError(`cgroup: listing ${dir} failed: ${describeErrno(err)}`, { cause: err });
  }
}

/**
 * PIDs listed in `cgroup.procs` of `dir` and of every cgroup below it: a container may create nested cgroups
 * (with a delegated subtree), and its processes there still belong to it.
 */
export function readProcsRecursive(dir: string, into: Set<number> = new Set()): Set<number> {
  for (const line of (readOptional(path.join(dir, 'cgroup.procs')) ?? '').split('\n')) {
    const pid = Number(line.trim());
    if (line.trim() !== '' && Number.isInteger(pid) && pid > 0) into.add(pid);
  }
  for (const child of childDirs(dir)) readProcsRecursive(path.join(dir, child), into);
  return into;
}

/** Whether `signal` is SIGKILL, given by name or number. */
export function isSigkill(signal: NodeJS.Signals | number): boolean {
  return signal === 'SIGKILL' || signal === os.constants.signals.SIGKILL;
}

/**
 * Signals every process that `listPids` reports until a listing shows no process not already signalled. One pass
 * is not enough: a task may fork between the listing and its death, and its child only shows up in the next
 * listing. Our own process is skipped: if it ever sits in a container's cgroup, that is a bug to report, not a
 * reason to kill the engine.
 */
export function signalUntilQuiet(listPids: () => Iterable<number>, signal: NodeJS.Signals | number): void {
  const signalled = new Set<number>();
  for (let round = 0; round < 100; round++) {
    let fresh = 0;
    for (const pid of listPids()) {
      if (signalled.has(pid) || pid === process.pid) continue;
      signalled.add(pid);
      fresh++;
      try {
        process.kill(pid, signal);
      } catch (err) {
        // ESRCH: it exited between the listing and the signal, which is what we wanted anyway.
        if (errnoOf(err) !== 'ESRCH') {
          throw new CgroupError(`cgroup: sending ${String(signal)} to pid ${pid} failed: ${describeErrno(err)}`, {
            cause: err,
          });
        }
      }
    }
    if (fresh === 0) return;
  }
}

/** Closes an fd, ignoring EBADF (already closed elsewhere): releasing must be idempotent. */
export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Nothing useful to do: the fd is gone either way.
  }
}

/** How long `removeCgroupDir` keeps retrying EBUSY before giving up. */
const REMOVE_TIMEOUT_MS = 2000;

/**
 * Removes a cgroup directory and any child cgroups below it (deepest first). Only directories are removed:
 * cgroupfs interface files vanish with their directory. The kernel answers EBUSY while tasks are still exiting,
 * so EBUSY is retried with a short backoff, calling `beforeRetry` (re-kill stragglers) each time, for about 2 s.
 * A directory that is already gone counts as removed.
 */
export async function removeCgroupDir(dir: string, beforeRetry: () => void = () => {}): Promise<void> {
  for (const child of childDirs(dir)) await removeCgroupDir(path.join(dir, child), beforeRetry);
  const deadline = Date.now() + REMOVE_TIMEOUT_MS;
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() >= deadline) {
        const inside = code === 'EBUSY' ? [...readProcsRecursive(dir)].join(', ') || 'none' : undefined;
        const left = inside === undefined ? '' : `; tasks still inside: ${inside}`;
        throw new CgroupError(`cgroup: removing ${dir} failed: ${describeErrno(err)}${left}`, { cause: err });
      }
    }
    beforeRetry();
    await sleep(delay);
  }
}

/**
 * One rmdir attempt: true when the directory is gone (removed now or already), false when the kernel still calls
 * it busy (tasks or child cgroups inside) or refuses otherwise; the slow path then deals with it.
 */
export function tryRmdir(dir: string): boolean {
  try {
    fs.rmdirSync(dir);
    return true;
  } catch (err) {
    return errnoOf(err) === 'ENOENT';
  }
}

/**
 * Removes a shared parent directory if nobody uses it any more. ENOTEMPTY/EBUSY (another container, or another
 * process that just created a sibling) and ENOENT (someone else removed it) are the expected outcomes of sharing,
 * not errors.
 */
export function removeParentIfUnused(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOTEMPTY' || code === 'EBUSY' || code === 'ENOENT') return;
    throw new CgroupError(`cgroup: removing ${dir} failed: ${describeErrno(err)}`, { cause: err });
  }
}

/** How long `waitUntil` polls before giving up. */
export const FREEZE_TIMEOUT_MS = 5000;

/**
 * Polls `done` with a short backoff until it returns true; calls `nudge` every few rounds (the v1 freezer can stall
 * and needs the state rewritten). Throws a CgroupError built from `what` after `timeoutMs`.
 */
export async function waitUntil(
  done: () => boolean,
  what: string,
  options: { timeoutMs?: number; nudge?: () => void } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? FREEZE_TIMEOUT_MS);
  for (let round = 0, delay = 1; !done(); round++, delay = Math.min(delay * 2, 50)) {
    if (Date.now() >= deadline) throw new CgroupError(`cgroup: timed out waiting for ${what}`);
    if (round > 0 && round % 10 === 0) options.nudge?.();
    await sleep(delay);
  }
}
