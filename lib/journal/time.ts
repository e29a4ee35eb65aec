/**
 * Timestamps as Docker writes and reads them: RFC 3339 with nanoseconds for records (log lines, events), and the
 * forms `--since`/`--until` accept (RFC 3339 dates, Unix seconds, durations relative to now).
 * @module
 */
import { InvalidOptionsError } from '../errors.js';

// Date.now() has millisecond resolution; the nanoseconds within the current millisecond come from the monotonic
// clock, measured from when this process first saw that millisecond. So a time never runs ahead of Date.now().
let lastMs = 0n;
let lastHr = 0n;

/** Nanoseconds since the Unix epoch, now (the wall clock's millisecond, refined by the monotonic clock). */
export function nowNs(): bigint {
  const ms = BigInt(Date.now());
  const hr = process.hrtime.bigint();
  if (ms !== lastMs) {
    lastMs = ms;
    lastHr = hr;
  }
  const sub = hr - lastHr;
  return ms * 1_000_000n + (sub > 999_999n ? 999_999n : sub);
}

/**
 * Formats nanoseconds since the epoch as RFC 3339 in UTC with exactly nine fractional digits
 * (`2024-05-01T10:00:00.123456789Z`), so that such strings sort in time order.
 */
export function formatNs(ns: bigint): string {
  const ms = ns / 1_000_000n;
  const iso = new Date(Number(ms)).toISOString(); // 2024-05-01T10:00:00.123Z
  const frac = (((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n).toString().padStart(9, '0');
  return `${iso.slice(0, 19)}.${frac}Z`;
}

/** The current time as {@link formatNs} writes it. */
export function nowRfc3339Nano(): string {
  return formatNs(nowNs());
}

/**
 * Parses an RFC 3339 timestamp with any number of fractional digits and a `Z` or `±hh:mm` zone (none: local
 * time) into nanoseconds since the epoch; `undefined` when it is not one.
 */
export function parseRfc3339Ns(text: string): bigint | undefined {
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/i.exec(text.trim());
  if (!m) return undefined;
  // No zone means local time, as Docker's client reads it.
  const zone = m[4] === undefined ? '' : m[4].toUpperCase() === 'Z' ? 'Z' : m[4].length === 5 ? `${m[4].slice(0, 3)}:${m[4].slice(3)}` : m[4];
  const ms = Date.parse(`${m[1]}T${m[2]}${zone}`);
  if (Number.isNaN(ms)) return undefined;
  const frac = BigInt((m[3] ?? '').padEnd(9, '0') || '0');
  return BigInt(ms) * 1_000_000n + frac;
}

const DURATION_UNITS: Record<string, bigint> = {
  ns: 1n, us: 1_000n, µs: 1_000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n,
};

/** Parses a Go duration (`10m`, `1h30m`, `1.5s`, `250ms`) into nanoseconds; `undefined` when it is not one. */
export function parseDurationNs(text: string): bigint | undefined {
  const s = text.trim();
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(s)) return undefined;
  let total = 0n;
  for (const [, num, unit] of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    const [int, frac = ''] = num!.split('.');
    const scale = DURATION_UNITS[unit!]!;
    total += BigInt(int!) * scale + (BigInt(frac.padEnd(9, '0').slice(0, 9) || '0') * scale) / 1_000_000_000n;
  }
  return total;
}

/** A point in time as users give it: a Date, Unix seconds, or a string `--since`/`--until` accept. */
export type TimeInput = Date | number | string;

/**
 * Converts what `docker logs --since` / `docker events --until` accept into nanoseconds since the epoch: a
 * `Date`; a number of Unix seconds (fractions allowed); a string that is an RFC 3339 date (`2024-05-01`,
 * `2024-05-01T10:00:00Z`, with a fraction or a zone; without a zone it is local time), Unix seconds
 * (`1714557600.5`), or a duration that far before `now` (`10m`, `1h30m`). Throws `InvalidOptionsError` naming `field` otherwise.
 */
export function parseTimeInput(value: TimeInput, field: string, now: bigint = nowNs()): bigint {
  const bad = (): never => {
    throw new InvalidOptionsError(field, [
      { path: field, message: `cannot parse "${String(value)}": give an RFC 3339 date, Unix seconds or a duration like 10m` },
    ]);
  };
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isNaN(ms) ? bad() : BigInt(ms) * 1_000_000n;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return bad();
    return BigInt(Math.round(value * 1e6)) * 1000n;
  }
  const text = value.trim();
  if (/^\d+(\.\d{1,9})?$/.test(text)) {
    const [sec, frac = ''] = text.split('.');
    return BigInt(sec!) * 1_000_000_000n + BigInt(frac.padEnd(9, '0') || '0');
  }
  const duration = parseDurationNs(text);
  if (duration !== undefined) return now - duration;
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) return parseRfc3339Ns(`${text}T00:00:00`) ?? bad();
  return parseRfc3339Ns(text) ?? bad();
}
