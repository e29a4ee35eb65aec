/**
 * `berth pull` output, as docker prints it: on a terminal one line per layer redrawn in place with a progress
 * bar (`ec562eabd705: Downloading [=====>      ]  1.2MB/2.1MB`), otherwise one line per status change
 * (`Pulling fs layer`, `Verifying Checksum`, `Download complete`, `Pull complete`, `Already exists`), then the
 * digest and the status of the image.
 * @module
 */
import type { Writable } from 'node:stream';
import type { PullEvent } from '../image/pull.js';
import { humanSize, shortId } from './human.js';

/** Docker's bar: 50 columns of `=` with a `>` at the tip. */
export function progressBar(current: number, total: number): string {
  const width = 50;
  const filled = total > 0 ? Math.min(width, Math.floor((current / total) * width)) : 0;
  const bar = filled >= width ? '='.repeat(width) : `${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? '>' : ''}`;
  return `[${bar.padEnd(width)}] ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}

/** What is known about one layer. */
interface LayerState {
  downloaded: boolean;
  extracted: boolean;
  /** The phase of the last progress line drawn (`Downloading`, `Extracting`) and when. */
  phase: string;
  drawnAt: number;
}

/** Renders pull events to `out`. */
export class PullProgress {
  readonly #out: Writable & { isTTY?: boolean };
  readonly #tty: boolean;
  readonly #ids: string[] = [];
  readonly #shown = new Map<string, string>();
  readonly #layers = new Map<string, LayerState>();
  #downloaded = false;

  /** `tty` (default: whether `out` is a terminal) chooses bars redrawn in place or plain lines. */
  constructor(out: Writable & { isTTY?: boolean }, tty = out.isTTY === true) {
    this.#out = out;
    this.#tty = tty;
  }

  /** Whether some layer had to be downloaded (docker's "Downloaded newer image" against "Image is up to date"). */
  get downloaded(): boolean {
    return this.#downloaded;
  }

  #layer(id: string): LayerState {
    let l = this.#layers.get(id);
    if (!l) this.#layers.set(id, (l = { downloaded: false, extracted: false, phase: '', drawnAt: 0 }));
    return l;
  }

  /** A status line: always shown (once), on a terminal in the layer's own line. */
  #status(id: string, text: string): void {
    if (this.#shown.get(id) === text) return;
    this.#layer(id).phase = '';
    this.#draw(id, text);
  }

  /** A progress line: only on a terminal, at most ten times a second per layer (a new phase at once). */
  #progress(id: string, phase: string, current: number, total: number): void {
    if (!this.#tty) return;
    const l = this.#layer(id);
    const now = Date.now();
    if (l.phase === phase && now - l.drawnAt < 100) return;
    l.phase = phase;
    l.drawnAt = now;
    this.#draw(id, `${phase} ${progressBar(current, total)}`);
  }

  #draw(id: string, text: string): void {
    this.#shown.set(id, text);
    const i = this.#ids.indexOf(id);
    if (!this.#tty || i < 0) {
      if (i < 0) this.#ids.push(id);
      this.#out.write(`${id}: ${text}\n`);
      return;
    }
    const up = this.#ids.length - i;
    this.#out.write(`\x1b[${up}A\r\x1b[2K${id}: ${text}\r\x1b[${up}B`);
  }

  /** "Pull complete" once the layer is both downloaded (or was there) and unpacked, whichever finished last. */
  #maybeComplete(id: string): void {
    const l = this.#layer(id);
    if (l.downloaded && l.extracted) this.#status(id, 'Pull complete');
  }

  /** Handles one event. */
  event(e: PullEvent): void {
    switch (e.type) {
      case 'resolved':
        for (const l of e.layers) this.#status(shortId(l.digest), 'Pulling fs layer');
        break;
      case 'blob': {
        if (e.kind !== 'layer') break;
        const id = shortId(e.digest);
        if (e.status === 'exists') {
          this.#layer(id).downloaded = true;
          this.#status(id, 'Already exists');
        } else if (e.status === 'retrying') this.#status(id, 'Retrying');
        else if (e.status === 'downloading') {
          this.#downloaded = true;
          this.#progress(id, 'Downloading', e.current, e.total);
        } else {
          this.#status(id, 'Verifying Checksum');
          this.#status(id, 'Download complete');
          this.#layer(id).downloaded = true;
          this.#maybeComplete(id);
        }
        break;
      }
      case 'extract': {
        const id = shortId(e.digest);
        if (e.status === 'extracting') this.#progress(id, 'Extracting', e.current, e.total);
        else if (e.status === 'done') {
          this.#layer(id).extracted = true;
          this.#maybeComplete(id);
        }
        break;
      }
      default:
        break;
    }
  }
}
