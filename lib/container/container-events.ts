/**
 * The container events berth records (see lib/journal/events.ts): the attributes Docker gives them (name, image,
 * the container's labels), and `die` recorded exactly once per container whoever notices the exit first — the
 * owner, a detached container's log monitor, or a process cleaning up after a dead owner.
 * @module
 */
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { recordEvent } from '../journal/events.js';
import type { ContainerState } from './state.js';

/** Records a container event with Docker's attributes plus `extra`. */
export function containerEvent(root: string, state: ContainerState, action: string, extra: Record<string, string> = {}): void {
  recordEvent(root, 'container', action, state.id, {
    ...state.labels,
    ...(state.image ? { image: state.image.reference } : {}),
    name: state.name,
    ...extra,
  });
}

/** What is known about how a container ended (nothing, when another process reaped it). */
export interface DeathInfo {
  exitCode?: number | undefined;
  signal?: string | null | undefined;
  oomKilled?: boolean | undefined;
}

/**
 * Records `oom` (when the OOM killer struck) and `die` for the exit of a container whose program ran, once: the
 * first caller creates the marker file `died` in the container's directory, later callers find it and record
 * nothing.
 */
export function recordDeath(root: string, state: ContainerState, info: DeathInfo): void {
  if (!state.startedAt) return; // its program never ran: created, then removed (or its exec failed)
  try {
    writeFileSync(join(root, 'containers', state.id, 'died'), '', { flag: 'wx', mode: 0o600 });
  } catch {
    return; // already recorded, or the container is gone
  }
  if (info.oomKilled) containerEvent(root, state, 'oom');
  containerEvent(root, state, 'die', {
    exitCode: String(info.exitCode ?? -1),
    ...(info.signal ? { signal: info.signal } : {}),
  });
}

/** A container is started again: the next exit is recorded anew. */
export function forgetDeath(root: string, id: string): void {
  try {
    unlinkSync(join(root, 'containers', id, 'died'));
  } catch {
    // never died, or already forgotten
  }
}
