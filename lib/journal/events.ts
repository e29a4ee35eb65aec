/**
 * Events: what happened to the containers, images and networks of a state root, as `docker events` reports it.
 * There is no daemon to broadcast them, so whichever process makes a change appends the event to
 * `<root>/events.jsonl` (one JSON object per line, under the lock `<root>/events.lock`), and readers replay and
 * follow that file. It rotates into `events.jsonl.1` at 512 KiB, so a root keeps roughly the last few thousand
 * events (Docker keeps its last 256 in memory).
 * @module
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { defaultRoot } from '../container/state.js';
import { appendLocked, readRecords, type RotationLimits } from './rotated.js';
import { formatNs, nowNs, parseRfc3339Ns, parseTimeInput, type TimeInput } from './time.js';

/** What an event is about. */
export type EventType = 'container' | 'image' | 'network';

/**
 * One event. Container actions: `create`, `start`, `kill`, `die`, `oom`, `stop`, `pause`, `unpause`, `rename`,
 * `destroy`; image actions: `pull`, `tag`, `untag`, `delete`; network actions: `create`, `connect`, `disconnect`,
 * `destroy`.
 */
export interface BerthEvent {
  type: EventType;
  action: string;
  /** The container's id, the image's reference (pull) or id, the network's id. */
  id: string;
  /** `name`, `image`, `exitCode`, `signal`, the container's labels, ... (Docker's Actor.Attributes). */
  attributes: Record<string, string>;
  /** When it happened: RFC 3339 in UTC with nanoseconds (these strings sort in time order). */
  time: string;
}

/**
 * Which events to report, as `docker events --filter`: different keys must all match, several values of one key
 * any. `container` matches a container's id, id prefix or name; `image` the image attribute (or an image event's
 * id); `network` a network's id or name (or, for connect/disconnect, the network attribute); `label` a
 * `key` or `key=value` among the attributes.
 */
export interface EventFilters {
  type?: EventType[];
  /** Actions, e.g. `['start', 'die']`. */
  event?: string[];
  container?: string[];
  image?: string[];
  network?: string[];
  label?: string[];
}

/** Options of {@link events}. */
export interface EventsOptions {
  /** State root (default `BERTH_ROOT` or /var/lib/berth). */
  root?: string;
  /** Replay kept events from this time on (without it, only events from now on are reported). */
  since?: TimeInput;
  /** Stop at this time (without it, follow until the signal aborts or the loop breaks). */
  until?: TimeInput;
  filters?: EventFilters;
  signal?: AbortSignal;
}

const LIMITS: RotationLimits = { maxSize: 512 * 1024, maxFiles: 2 };

const eventSchema = z.object({
  type: z.enum(['container', 'image', 'network']),
  action: z.string(),
  id: z.string(),
  attributes: z.record(z.string(), z.string()),
  time: z.string(),
});

function files(root: string): { path: string; lock: string } {
  return { path: join(root, 'events.jsonl'), lock: join(root, 'events.lock') };
}

/**
 * Records an event in the state root `root`. Best effort: an event that cannot be written (disk full, root
 * removed) is dropped rather than failing the operation it reports; a root that does not exist (any more) is
 * never created for it.
 */
export function recordEvent(root: string, type: EventType, action: string, id: string, attributes: Record<string, string> = {}): void {
  const event: BerthEvent = { type, action, id, attributes, time: formatNs(nowNs()) };
  try {
    if (!existsSync(root)) return;
    const { path, lock } = files(root);
    appendLocked(path, lock, Buffer.from(`${JSON.stringify(event)}\n`), LIMITS);
  } catch {
    // dropped: see above
  }
}

/** Whether `e` passes `filters`. */
export function matchesEvent(e: BerthEvent, filters: EventFilters | undefined): boolean {
  if (!filters) return true;
  const any = (values: string[] | undefined, test: (v: string) => boolean) => !values?.length || values.some(test);
  const name = e.attributes.name;
  return (
    any(filters.type, (v) => v === e.type) &&
    any(filters.event, (v) => v === e.action) &&
    any(filters.container, (v) => e.type === 'container' && (v === name || (v.length >= 3 && e.id.startsWith(v)))) &&
    any(filters.image, (v) => sameImage(v, e.attributes.image) || (e.type === 'image' && (sameImage(v, e.id) || sameImage(v, name)))) &&
    any(filters.network, (v) =>
      e.type === 'network' ? v === name || (v.length >= 3 && e.id.startsWith(v)) : v === e.attributes.network) &&
    any(filters.label, (v) => {
      const eq = v.indexOf('=');
      return eq < 0 ? v in e.attributes : e.attributes[v.slice(0, eq)] === v.slice(eq + 1);
    })
  );
}

/** `busybox` matches `busybox`, `busybox:latest` and `docker.io/library/busybox:latest`. */
function sameImage(wanted: string, actual: string | undefined): boolean {
  if (!actual) return false;
  if (wanted === actual) return true;
  const short = actual.replace(/^docker\.io\/(library\/)?/, '');
  return wanted === short || `${wanted}:latest` === short || `${wanted}:latest` === actual;
}

/**
 * The events of a state root as an async iterable, as `docker events`: without `since` only new events, with it
 * the kept ones from that time on first; it ends at `until` (or when `signal` aborts, or the loop breaks).
 *
 * ```ts
 * for await (const e of Container.events({ filters: { event: ['die'] } })) console.log(e.id, e.attributes.exitCode);
 * ```
 */
export async function* events(options: EventsOptions = {}): AsyncGenerator<BerthEvent> {
  const root = resolve(options.root ?? defaultRoot());
  const now = nowNs();
  const since = options.since !== undefined ? parseTimeInput(options.since, 'since', now) : undefined;
  const until = options.until !== undefined ? parseTimeInput(options.until, 'until', now) : undefined;
  const fromStart = since !== undefined || until !== undefined;
  const ended = () => until !== undefined && nowNs() > until;
  // A timer so that following ends at `until` even when nothing happens.
  let timer: NodeJS.Timeout | undefined;
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  if (until !== undefined && until > now) timer = setTimeout(() => ac.abort(), Number((until - now) / 1_000_000n) + 1);
  try {
    if (options.signal?.aborted) return;
    for await (const line of readRecords(files(root).path, {
      maxFiles: LIMITS.maxFiles,
      start: fromStart ? 'beginning' : 'end',
      follow: until === undefined || until > now,
      shouldStop: ended,
      signal: ac.signal,
    })) {
      const e = parseEvent(line);
      if (!e) continue;
      const t = parseRfc3339Ns(e.time) ?? 0n;
      if (since !== undefined && t < since) continue;
      if (until !== undefined && t > until) return;
      if (matchesEvent(e, options.filters)) yield e;
    }
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

function parseEvent(line: string): BerthEvent | undefined {
  try {
    const r = eventSchema.safeParse(JSON.parse(line));
    return r.success ? r.data : undefined;
  } catch {
    return undefined; // a torn or foreign line
  }
}
