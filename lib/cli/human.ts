/**
 * Text the way the docker CLI prints it: sizes in decimal units (`2.1MB`), durations (`About a minute`), the
 * STATUS column (`Up 5 seconds (Paused)`, `Exited (0) 3 seconds ago`), quoted and shortened commands, ports.
 * @module
 */
import type { PortBinding } from '../network/ports.js';

/** Decimal units with four significant digits, as docker's `HumanSize`: `0B`, `4.26kB`, `1.23MB`. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

/** A rough duration, as docker's `HumanDuration`: `Less than a second`, `5 seconds`, `About an hour`, `3 days`. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/** `5 seconds ago`. */
export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '';
  return `${humanDuration(now - Date.parse(iso))} ago`;
}

/** The STATUS column of `ps`. */
export function statusText(
  c: { status: string; paused: boolean; startedAt: string | null; finishedAt: string | null; exitCode: number | null; restarting?: boolean },
  now = Date.now(),
): string {
  if (c.restarting) return `Restarting (${c.exitCode ?? -1}) ${ago(c.finishedAt ?? new Date(now).toISOString(), now)}`;
  if (c.status === 'running') {
    const up = `Up ${humanDuration(now - Date.parse(c.startedAt ?? new Date(now).toISOString()))}`;
    return c.paused ? `${up} (Paused)` : up;
  }
  if (c.status === 'exited') {
    return c.finishedAt ? `Exited (${c.exitCode ?? -1}) ${ago(c.finishedAt, now)}` : `Exited (${c.exitCode ?? -1})`;
  }
  return 'Created';
}

/** The State column (`docker ps --format '{{.State}}'`): created, running, paused, restarting, exited. */
export function stateText(c: { status: string; paused: boolean; restarting?: boolean }): string {
  if (c.restarting) return 'restarting';
  return c.status === 'running' && c.paused ? 'paused' : c.status;
}

/** Shortens to `max` characters with an ellipsis, as docker's `Ellipsis`. */
export function ellipsis(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** The COMMAND column: the command line quoted (Go's %q), shortened to 20 characters unless `full`. */
export function commandText(command: readonly string[], full: boolean): string {
  const text = command.join(' ');
  return JSON.stringify(full ? text : ellipsis(text, 20));
}

/** The PORTS column: `0.0.0.0:8080->80/tcp, 127.0.0.1:53->53/udp`. */
export function portsText(ports: readonly PortBinding[]): string {
  return ports.map((p) => `${p.hostIp}:${p.host}->${p.container}/${p.protocol}`).join(', ');
}

/** A 12-character id, without an algorithm prefix. */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
