/**
 * Applies one image layer — a tar stream, gzip- or zstd-compressed or not — onto a snapshot directory.
 *
 * A layer is hostile input (DESIGN.md decision 6). The tar stream is parsed here, in TypeScript, by a small
 * ustar/pax/GNU parser that validates every header; each entry becomes an operation that the addon
 * (addon/layer.cc) performs relative to the snapshot's directory fd, with parents resolved inside the snapshot
 * (openat2 RESOLVE_IN_ROOT) and final components never followed. Names that climb out of the root, absolute names,
 * entries retyping the root and hardlinks to outside paths are refused before any syscall.
 *
 * Why our own parser and writer rather than the `tar` package: its extractor is several times slower than GNU tar,
 * and header parsing is a few hundred lines we need to audit anyway. Writes are batched (thousands of entries or
 * several MiB per N-API call) and run on the thread pool while the next batch is decompressed and parsed.
 * @module
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants } from 'node:fs';
import { constants } from 'node:os';
import { Readable, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { AbortError } from '../errors.js';
import { native, LayerOpKind, type LayerApplyFailure, type LayerOp, type NativeInflater } from '../native.js';
import { LayerError } from './layer-errors.js';
import { Channel } from './channel.js';

/** Options of {@link applyLayer}. */
export interface ApplyLayerOptions {
  /** Aborts the application; the promise rejects with an `AbortError` and the snapshot must be discarded. */
  signal?: AbortSignal;
  /** Cap on the decompressed size of the layer, in bytes (default 64 GiB): a decompression bomb stops here. */
  maxBytes?: number;
  /** Called as the (possibly compressed) source is consumed, with the number of source bytes read so far. */
  onProgress?: (bytes: number) => void;
  /**
   * `overlay` (default): the snapshot holds only this layer's diff and is used as an overlayfs lowerdir, so
   * whiteouts are RECORDED the overlayfs way (a 0:0 character device; `trusted.overlay.opaque=y` on opaque
   * directories). `flat`: the layer is applied on top of the lower layers' files in the same directory, so
   * whiteouts DELETE what they name, and opaque directories lose what lower layers put in them.
   */
  mode?: 'overlay' | 'flat';
}

/** What {@link applyLayer} returns. */
export interface ApplyLayerResult {
  /** `sha256:<hex>` of the uncompressed tar stream: the layer's DiffID, to compare with the image config. */
  diffId: string;
  /** Size of the uncompressed tar stream in bytes. */
  size: number;
  /** Bytes of file content written (regular files; what the layer adds on disk, as Docker counts a layer's size). */
  contentSize: number;
}

/** Default cap on a layer's decompressed size. */
export const DEFAULT_MAX_LAYER_BYTES = 64 * 1024 ** 3;

const BLOCK = 512;
/** pax and GNU long-name records are metadata: a few KiB normally, refused beyond this. */
const MAX_META_BYTES = 8 * 1024 * 1024;
/** A batch goes to the addon once it holds this many entries or data bytes. */
const BATCH_OPS = 4096;
const BATCH_BYTES = 16 * 1024 * 1024;

const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/**
 * Applies one layer onto `targetDir` and returns its DiffID.
 *
 * The source may be gzip (`1f 8b`), zstd (`28 b5 2f fd`) or an uncompressed tar; the format is detected from the
 * first bytes. Entries replace whatever exists at their path; directories' mtimes are set after all entries.
 * Whiteouts follow the OCI image spec (see {@link ApplyLayerOptions.mode}).
 *
 * On failure (hostile or malformed archive, size cap, filesystem error) it rejects with a {@link LayerError} naming
 * the entry, and `targetDir` is left half-written: discard it. Nothing is ever written outside `targetDir`.
 * The caller should still compare `diffId` with the image config: a truncated-but-well-formed tar is accepted.
 */
export async function applyLayer(
  source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
  targetDir: string,
  options: ApplyLayerOptions = {},
): Promise<ApplyLayerResult> {
  const { signal } = options;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_LAYER_BYTES;
  if (signal?.aborted) throw new AbortError();

  let rootFd: number;
  try {
    rootFd = native.layerOpenRoot(targetDir);
  } catch (cause) {
    throw new LayerError(`cannot open the snapshot directory ${targetDir}: ${(cause as Error).message}`, { cause });
  }
  const writer = new BatchWriter(rootFd, options.mode === 'flat');
  const parser = new TarParser(writer, options.mode === 'flat');
  const hash = createHash('sha256');
  let size = 0;
  const digest: DigestSink = {};
  const chunks = decompress(inputChunks(source, signal, options.onProgress), digest);
  try {
    for await (const chunk of chunks) {
      if (signal?.aborted) throw new AbortError();
      size += chunk.length;
      if (size > maxBytes) {
        throw new LayerError(`the layer's decompressed size exceeds the limit of ${maxBytes} bytes`, {
          entry: parser.currentEntry(),
        });
      }
      // The native inflater digests what it inflates, on the thread pool; other formats are hashed here.
      if (!digest.inflater) hash.update(chunk);
      parser.push(chunk, maxBytes - size + chunk.length);
      if (writer.full()) await writer.flush();
    }
    parser.end();
    writer.finishDirectories();
    await writer.flush();
    await writer.settle();
  } catch (err) {
    await writer.abandon();
    throw err;
  } finally {
    closeSync(rootFd);
  }
  return { diffId: `sha256:${digest.inflater ? digest.inflater.digest() : hash.digest('hex')}`, size, contentSize: parser.contentSize };
}

/** Set by a decompressor that digests the uncompressed stream itself (read once the stream has ended). */
interface DigestSink {
  inflater?: NativeInflater;
}

// --- input and decompression ---------------------------------------------------------------------------------

async function* inputChunks(
  source: AsyncIterable<Uint8Array> | NodeJS.ReadableStream,
  signal: AbortSignal | undefined,
  onProgress: ((bytes: number) => void) | undefined,
): AsyncGenerator<Buffer> {
  let read = 0;
  for await (const c of source as AsyncIterable<Uint8Array | string>) {
    if (signal?.aborted) throw new AbortError();
    const buf = typeof c === 'string' ? Buffer.from(c) : Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    read += buf.length;
    onProgress?.(read);
    yield buf;
  }
}

/** Sniffs the compression from the first bytes and yields the decompressed stream. */
async function* decompress(input: AsyncGenerator<Buffer>, digest: DigestSink): AsyncGenerator<Buffer> {
  const head: Buffer[] = [];
  let n = 0;
  while (n < 4) {
    const r = await input.next();
    if (r.done) break;
    head.push(r.value);
    n += r.value.length;
  }
  const first = Buffer.concat(head);
  async function* rest(): AsyncGenerator<Buffer> {
    if (first.length > 0) yield first;
    yield* input;
  }
  if (first[0] === 0x1f && first[1] === 0x8b) {
    // Inflated and digested on the thread pool by the addon (ISA-L where Debian's libisal2 is installed: about
    // 2.5x faster than zlib on a Debian layer), ahead of the parser by a few MiB: the event loop only parses.
    yield* nativeGunzip(rest(), digest);
  } else if (first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd) {
    // Node ≥ 22.15 has zstd in zlib; Node 20 does not, so fall back to the zstd CLI (Debian's `zstd` package):
    // the reference implementation, multi-threaded I/O, no native npm dependency to build, and it runs in its
    // own process, so a hostile frame can at worst crash that process.
    const createZstd = (zlib as unknown as { createZstdDecompress?: () => NodeJS.ReadWriteStream }).createZstdDecompress;
    if (createZstd) yield* throughStream(rest(), createZstd() as unknown as zlib.Gunzip);
    else yield* cliDecompress(rest(), toolPath('zstd') ?? 'zstd', ['-d', '-c', '-q'], 'zstd');
  } else {
    yield* rest();
  }
}

async function* throughStream(input: AsyncGenerator<Buffer>, transform: zlib.Gunzip): AsyncGenerator<Buffer> {
  let failure: Error | undefined;
  pipeline(Readable.from(input), transform, (err) => {
    if (err) failure = err;
  });
  try {
    for await (const chunk of transform as AsyncIterable<Buffer>) yield chunk;
  } catch (err) {
    throw decompressError(failure ?? (err as Error));
  }
  if (failure) throw decompressError(failure);
}

function decompressError(err: Error): Error {
  if (err instanceof LayerError || err instanceof AbortError) return err;
  return new LayerError(`cannot decompress the layer: ${err.message}`, { cause: err });
}

/**
 * Where a decompression tool is installed, or undefined. Looked up once per process in the system's directories,
 * not through $PATH: a library must not run whatever a caller's PATH names, as root, on a layer.
 */
function toolPath(name: 'zstd'): string | undefined {
  if (!toolPaths.has(name)) {
    let found: string | undefined;
    for (const dir of ['/usr/bin', '/usr/local/bin', '/bin']) {
      try {
        accessSync(`${dir}/${name}`, fsConstants.X_OK);
        found = `${dir}/${name}`;
        break;
      } catch {
        // not here
      }
    }
    toolPaths.set(name, found);
  }
  return toolPaths.get(name);
}
const toolPaths = new Map<string, string | undefined>();

/** Inflated bytes the addon may run ahead of the tar parser. */
const INFLATE_AHEAD = 8 << 20;
/** Compressed bytes handed to the addon per step. */
const INFLATE_STEP = 1 << 20;

/**
 * gzip through the addon's inflater: compressed input goes over in ~1 MiB steps, output comes back in 1 MiB
 * buffers (each step returns at most a few MiB, so a bomb cannot balloon memory) into a bounded channel the
 * caller reads. Corrupt data, a bad CRC, a cut stream or trailing bytes that are not gzip reject.
 */
async function* nativeGunzip(input: AsyncGenerator<Buffer>, digest: DigestSink): AsyncGenerator<Buffer> {
  // BERTH_GZIP=zlib forces zlib (to compare, or should ISA-L misbehave somewhere).
  const inflater = native.inflater('sha256', process.env.BERTH_GZIP === 'zlib' ? 'zlib' : 'auto');
  digest.inflater = inflater;
  const out = new Channel<Buffer>(INFLATE_AHEAD);
  const step = async (batch: Buffer[], end: boolean): Promise<void> => {
    let r = await inflater.push(batch, end);
    for (;;) {
      for (const b of r.out) await out.push(b);
      if (r.drained || out.closed) return;
      r = await inflater.push(null, end);
    }
  };
  const produce = async (): Promise<void> => {
    try {
      let batch: Buffer[] = [];
      let bytes = 0;
      for await (const chunk of input) {
        batch.push(chunk);
        bytes += chunk.length;
        if (bytes < INFLATE_STEP) continue;
        await step(batch, false);
        batch = [];
        bytes = 0;
        if (out.closed) return;
      }
      await step(batch, true);
      out.end();
    } catch (err) {
      out.fail(decompressError(err as Error));
    }
  };
  void produce();
  yield* out;
}

/** Decompresses through a CLI filter (`zstd -d -c`) in its own process: a hostile frame can at worst crash that. */
async function* cliDecompress(input: AsyncGenerator<Buffer>, command: string, args: string[], format: string): AsyncGenerator<Buffer> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 4096) stderr += s;
  });
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, error }));
    child.once('close', (code) => resolve({ code }));
  });
  let inputFailure: Error | undefined;
  pipeline(Readable.from(input), child.stdin, (err) => {
    // EPIPE only means the tool stopped reading (it failed, or we stopped early); its exit status tells which.
    if (err && (err as NodeJS.ErrnoException).code !== 'EPIPE') {
      inputFailure = err;
      child.kill('SIGKILL');
    }
  });
  let done = false;
  try {
    for await (const chunk of child.stdout as AsyncIterable<Buffer>) yield chunk;
    const { code, error } = await exited;
    done = true;
    if (inputFailure) throw decompressError(inputFailure);
    if (error) {
      throw new LayerError(
        `cannot run ${command} to decompress a ${format} layer (${error.message}); install the "${format}" package`,
        { cause: error },
      );
    }
    if (code !== 0) throw new LayerError(`cannot decompress the ${format} layer: ${stderr.trim() || `${command} exited ${code}`}`);
  } finally {
    if (!done) child.kill('SIGKILL');
  }
}

// --- batched writes ------------------------------------------------------------------------------------------

/** Collects ops into batches and keeps one batch running in the addon while the next one is built. */
class BatchWriter {
  private batch: LayerOp[] = [];
  private bytes = 0;
  private inflight: { ops: LayerOp[]; done: Promise<number> } | undefined;
  private pendingFd = -1;
  /** Directory mtimes, applied last: creating entries inside a directory would change its mtime again. */
  private readonly dirTimes = new Map<string, [number, number]>();
  /** The tar name of each op in the current and in-flight batches, so errors can name the entry. */
  private readonly names = new WeakMap<LayerOp, string>();

  constructor(
    private readonly rootFd: number,
    private readonly flat: boolean,
  ) {}

  add(op: LayerOp, entry: string): LayerOp {
    this.batch.push(op);
    this.names.set(op, entry);
    return op;
  }

  addData(op: LayerOp, data: Buffer): void {
    (op.d ??= []).push(data);
    this.bytes += data.length;
  }

  /** Whether `op` is still in the batch being built (and can take more data). */
  holds(op: LayerOp): boolean {
    return this.batch[this.batch.length - 1] === op;
  }

  setDirTime(path: string, sec: number, nsec: number): void {
    this.dirTimes.set(path, [sec, nsec]);
  }

  finishDirectories(): void {
    for (const [p, [t, n]] of this.dirTimes) this.add({ k: LayerOpKind.dirTimes, p, t, n }, p);
  }

  full(): boolean {
    return this.batch.length >= BATCH_OPS || this.bytes >= BATCH_BYTES;
  }

  /** Hands the current batch to the addon once the previous one finished (writes must stay in order). */
  async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    await this.settle();
    const ops = this.batch;
    this.batch = [];
    this.bytes = 0;
    this.inflight = { ops, done: native.layerApply(this.rootFd, ops, this.pendingFd, this.flat) };
    this.pendingFd = -1;
  }

  /** Waits for the batch in the addon; translates its failure into a LayerError naming the entry. */
  async settle(): Promise<void> {
    const inflight = this.inflight;
    if (!inflight) return;
    this.inflight = undefined;
    try {
      this.pendingFd = await inflight.done;
    } catch (cause) {
      const f = cause as LayerApplyFailure;
      const op = f.index === undefined ? undefined : inflight.ops[f.index];
      const errno = f.errno === undefined ? undefined : errnoName(f.errno);
      throw new LayerError(f.message, {
        entry: op === undefined ? undefined : (this.names.get(op) ?? op.p),
        cause,
        ...(errno === undefined ? {} : { errno }),
      });
    }
  }

  /** After a failure: let the running batch finish (it writes into our fds) and close what it left open. */
  async abandon(): Promise<void> {
    await this.settle().catch(() => undefined);
    if (this.pendingFd >= 0) closeSync(this.pendingFd);
    this.pendingFd = -1;
  }
}

function errnoName(errno: number): string | undefined {
  for (const [name, value] of Object.entries(constants.errno)) if (value === errno) return name;
  return undefined;
}

// --- tar parsing ---------------------------------------------------------------------------------------------

/** A tar header after pax and GNU long-name records were merged into it. */
interface Entry {
  name: string;
  linkname: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  mtimeNsec: number;
  devmajor: number;
  devminor: number;
  xattrs: (string | Uint8Array)[];
}

/** Attributes from a pax extended header or GNU long-name records, for the next entry. */
interface Overrides {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: [number, number];
  xattrs: (string | Uint8Array)[];
}

type State =
  | { kind: 'header' }
  | { kind: 'meta'; type: string; entry: string; left: number; pad: number; parts: Buffer[] }
  | { kind: 'data'; entry: string; left: number; pad: number; op: LayerOp | undefined; meta: LayerOp | undefined }
  | { kind: 'end'; check: number };

/**
 * A streaming tar parser (ustar, pax, GNU long names; old v7 headers) that turns entries into {@link LayerOp}s.
 * Data is never copied: file ops reference slices of the decompressed chunks.
 */
class TarParser {
  private state: State = { kind: 'header' };
  private readonly header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private overrides: Overrides = { xattrs: [] };
  /** Flat mode: names this layer wrote in each directory, which an opaque marker must not delete. */
  private readonly written = new Map<string, Set<string>>();
  /** Bytes of regular files' content written so far. */
  contentSize = 0;

  constructor(
    private readonly writer: BatchWriter,
    private readonly flat: boolean,
  ) {}

  /** The entry being read, to name it in size-cap errors. */
  currentEntry(): string | undefined {
    return this.state.kind === 'data' || this.state.kind === 'meta' ? this.state.entry : undefined;
  }

  /** Consumes one decompressed chunk; `budget` is how many bytes the size cap still allows from its start. */
  push(chunk: Buffer, budget: number): void {
    let pos = 0;
    while (pos < chunk.length) {
      const st = this.state;
      switch (st.kind) {
        case 'end': {
          // The end-of-archive marker is two zero blocks: the second must be zero too (as Go's archive/tar,
          // which Docker uses, insists), so no tool sees entries here that we skipped. What follows is padding,
          // hashed into the DiffID by the caller but not parsed.
          const take = Math.min(st.check, chunk.length - pos);
          for (let i = pos; i < pos + take; i++) {
            if (chunk[i] !== 0) throw new LayerError('data after a zero block: the end-of-archive marker must be two zero blocks');
          }
          st.check -= take;
          pos += take;
          if (st.check === 0) return;
          break;
        }
        case 'header': {
          const take = Math.min(BLOCK - this.headerFill, chunk.length - pos);
          chunk.copy(this.header, this.headerFill, pos, pos + take);
          this.headerFill += take;
          pos += take;
          if (this.headerFill === BLOCK) {
            this.headerFill = 0;
            this.onHeader(budget - pos);
          }
          break;
        }
        case 'meta': {
          const take = Math.min(st.left, chunk.length - pos);
          if (take > 0) st.parts.push(chunk.subarray(pos, pos + take));
          st.left -= take;
          pos += take;
          if (st.left === 0) {
            const skip = Math.min(st.pad, chunk.length - pos);
            st.pad -= skip;
            pos += skip;
            if (st.pad === 0) {
              this.onMeta(st.type, st.entry, Buffer.concat(st.parts));
              this.state = { kind: 'header' };
            }
          }
          break;
        }
        case 'data': {
          const take = Math.min(st.left, chunk.length - pos);
          if (take > 0 && st.meta) {
            let op = st.op;
            if (!op || !this.writer.holds(op)) {
              // The file's first op went to the addon already: continue it in the batch being built.
              op = this.writer.add({ ...st.meta, k: LayerOpKind.fileData, f: false }, st.entry);
              st.op = op;
            }
            this.writer.addData(op, chunk.subarray(pos, pos + take));
          }
          st.left -= take;
          pos += take;
          if (st.left === 0) {
            if (st.meta && st.op?.f === false) this.finishFile(st);
            const skip = Math.min(st.pad, chunk.length - pos);
            st.pad -= skip;
            pos += skip;
            if (st.pad === 0) this.state = { kind: 'header' };
          }
          break;
        }
      }
    }
  }

  private finishFile(st: Extract<State, { kind: 'data' }>): void {
    if (!st.meta) return;
    if (!st.op || !this.writer.holds(st.op)) {
      st.op = this.writer.add({ ...st.meta, k: LayerOpKind.fileData, f: true }, st.entry);
    } else {
      st.op.f = true;
    }
  }

  /** End of the decompressed stream: anything but a clean entry boundary means a truncated archive. */
  end(): void {
    const st = this.state;
    if (st.kind === 'end') return;
    if (st.kind === 'header' && this.headerFill === 0) {
      // No end-of-archive blocks: tolerated (as Go's archive/tar and GNU tar do), but a pending pax header
      // without its entry is not.
      if (this.overrides.path !== undefined || this.overrides.xattrs.length > 0) {
        throw new LayerError('the archive is truncated: it ends after an extended header');
      }
      return;
    }
    const entry = this.currentEntry();
    throw new LayerError(
      st.kind === 'header' ? 'the archive is truncated in the middle of a header' : 'the archive is truncated (entry data is missing)',
      entry === undefined ? {} : { entry },
    );
  }

  private onHeader(budget: number): void {
    const h = this.header;
    if (isZero(h)) {
      // The end-of-archive marker: this zero block, and the next one must be zero as well.
      this.state = { kind: 'end', check: BLOCK };
      return;
    }
    const rawName = cstring(h, 0, 100);
    const expected = parseNumber(h, 148, 8, rawName, 'checksum');
    if (!checksumMatches(h, expected)) throw new LayerError('invalid tar header checksum (corrupt or not a tar archive)', { entry: rawName });

    const magic = h.toString('latin1', 257, 265);
    let name = rawName;
    if (magic.startsWith('ustar\0')) {
      const prefix = cstring(h, 345, 155);
      if (prefix) name = `${prefix}/${name}`;
    }
    const type = String.fromCharCode(h[156] ?? 0);
    const ov = this.overrides;
    const entryName = ov.path ?? name;
    const headerSize = parseNumber(h, 124, 12, entryName, 'size');

    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      const size = headerSize;
      if (size > MAX_META_BYTES) throw new LayerError(`extended header of ${size} bytes is too large`, { entry: entryName });
      this.state = { kind: 'meta', type, entry: entryName, left: size, pad: padding(size), parts: [] };
      if (size === 0) this.finishZeroMeta();
      return;
    }

    this.overrides = { xattrs: [] };
    const size = ov.size ?? headerSize;
    if (size > budget) {
      throw new LayerError(`entry of ${size} bytes exceeds the layer's size limit`, { entry: entryName });
    }
    const entry: Entry = {
      name: entryName,
      linkname: ov.linkpath ?? cstring(h, 157, 100),
      type,
      size,
      mode: parseNumber(h, 100, 8, entryName, 'mode') & 0o7777,
      uid: ov.uid ?? parseNumber(h, 108, 8, entryName, 'uid'),
      gid: ov.gid ?? parseNumber(h, 116, 8, entryName, 'gid'),
      mtime: ov.mtime?.[0] ?? parseNumber(h, 136, 12, entryName, 'mtime'),
      mtimeNsec: ov.mtime?.[1] ?? 0,
      devmajor: parseNumber(h, 329, 8, entryName, 'devmajor'),
      devminor: parseNumber(h, 337, 8, entryName, 'devminor'),
      xattrs: ov.xattrs,
    };
    if (entry.uid > 0xffffffff || entry.gid > 0xffffffff) throw new LayerError('uid or gid out of range', { entry: entryName });
    const meta = this.entryOp(entry);
    // Only regular files carry data we write; whatever size another header claims is read and skipped.
    const fileMeta = meta?.k === LayerOpKind.file ? meta : undefined;
    const op = meta ? this.writer.add(fileMeta ? { ...meta, f: size === 0 } : meta, entryName) : undefined;
    if (fileMeta) this.contentSize += size;
    if (size === 0) {
      this.state = { kind: 'header' };
      return;
    }
    this.state = { kind: 'data', entry: entryName, left: size, pad: padding(size), op: fileMeta && op, meta: fileMeta };
  }

  private finishZeroMeta(): void {
    const st = this.state;
    if (st.kind !== 'meta') return;
    this.onMeta(st.type, st.entry, Buffer.alloc(0));
    this.state = { kind: 'header' };
  }

  private onMeta(type: string, entry: string, data: Buffer): void {
    if (type === 'L') this.overrides.path = cstring(data, 0, data.length);
    else if (type === 'K') this.overrides.linkpath = cstring(data, 0, data.length);
    else if (type === 'x') parsePax(data, entry, this.overrides);
    // 'g' (pax global header): its records would apply to every later entry; Docker and containerd ignore them
    // too, and no image tool writes path or ownership records there.
  }

  /** Decides what an entry means: validates its name, maps whiteouts, and returns the op (undefined: skip it). */
  private entryOp(e: Entry): LayerOp | undefined {
    let type = e.type;
    if ((type === '0' || type === '\0') && e.name.endsWith('/')) type = '5'; // v7 archives mark dirs by a slash
    const path = cleanPath(e.name, e.name);
    const base: LayerOp = { k: 0, p: path, m: e.mode, u: e.uid, g: e.gid, t: e.mtime, n: e.mtimeNsec };
    if (e.xattrs.length > 0) base.x = e.xattrs;

    const slash = path.lastIndexOf('/');
    const dir = slash < 0 ? '.' : path.slice(0, slash);
    const leaf = slash < 0 ? path : path.slice(slash + 1);
    if (leaf.startsWith('.wh.')) {
      if (leaf === '.wh..wh..opq') return { k: LayerOpKind.opaque, p: dir, keep: [...(this.written.get(dir) ?? [])] };
      // Other .wh..wh. names are aufs bookkeeping (hardlink dirs), never part of the image's filesystem.
      if (leaf.startsWith('.wh..wh.')) return undefined;
      const target = leaf.slice(4);
      if (target === '' || target === '.' || target === '..') throw new LayerError('invalid whiteout name', { entry: e.name });
      // Docker records overlay whiteouts with mode 0 and the entry's owner.
      return { ...base, k: LayerOpKind.whiteout, p: dir === '.' ? target : `${dir}/${target}`, m: 0, x: undefined };
    }

    if (path === '.' && type !== '5') {
      // umoci CVE-2021-29136: a layer must not turn the snapshot root into a file, symlink or device.
      throw new LayerError('an entry may not replace the root directory with a non-directory', { entry: e.name });
    }
    if (this.flat && path !== '.') {
      let names = this.written.get(dir);
      if (!names) this.written.set(dir, (names = new Set()));
      names.add(leaf);
    }
    switch (type) {
      case '0':
      case '\0':
      case '7':
        return { ...base, k: LayerOpKind.file };
      case '5':
        this.writer.setDirTime(path, e.mtime, e.mtimeNsec);
        return { ...base, k: LayerOpKind.dir };
      case '2':
        if (e.linkname === '' || e.linkname.includes('\0')) throw new LayerError('invalid symlink target', { entry: e.name });
        // Symlink text is stored, never followed by us outside the root: any target is allowed.
        return { ...base, k: LayerOpKind.symlink, l: e.linkname };
      case '1': {
        if (e.linkname === '') throw new LayerError('hardlink without a target', { entry: e.name });
        const target = cleanPath(e.linkname, e.name, 'hardlink target');
        if (target === '.') throw new LayerError('a hardlink may not point to the root directory', { entry: e.name });
        return { ...base, k: LayerOpKind.hardlink, l: target };
      }
      case '3':
        return { ...base, k: LayerOpKind.node, m: S_IFCHR | e.mode, ma: e.devmajor, mi: e.devminor };
      case '4':
        return { ...base, k: LayerOpKind.node, m: S_IFBLK | e.mode, ma: e.devmajor, mi: e.devminor };
      case '6':
        return { ...base, k: LayerOpKind.node, m: S_IFIFO | e.mode };
      case 'V':
        return undefined; // GNU volume label: no filesystem object
      default:
        throw new LayerError(`unsupported tar entry type ${JSON.stringify(type)}`, { entry: e.name });
    }
  }
}

/**
 * Lexically cleans an archive path to a relative path inside the root ("." for the root). Refuses absolute
 * paths and `..` that climbs out of the root: such an archive is hostile, not merely odd.
 */
function cleanPath(raw: string, entry: string, what = 'path'): string {
  if (raw.includes('\0')) throw new LayerError(`${what} contains a NUL byte`, { entry });
  if (raw.startsWith('/')) throw new LayerError(`absolute ${what} ${JSON.stringify(raw)} is not allowed in a layer`, { entry });
  const out: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length === 0) throw new LayerError(`${what} ${JSON.stringify(raw)} escapes the layer root`, { entry });
      out.pop();
    } else {
      out.push(part);
    }
  }
  return out.length === 0 ? '.' : out.join('/');
}

/** Parses pax records (`<len> <key>=<value>\n`) into `ov`. Values of xattrs are raw bytes, others UTF-8. */
function parsePax(data: Buffer, entry: string, ov: Overrides): void {
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // some writers pad the record block with NULs
    const space = data.indexOf(0x20, pos);
    const len = space < 0 ? NaN : Number(data.toString('latin1', pos, space));
    if (!Number.isSafeInteger(len) || len <= space - pos + 1 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new LayerError('malformed pax extended header', { entry });
    }
    const rec = data.subarray(space + 1, pos + len - 1);
    pos += len;
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new LayerError('malformed pax record (no "=")', { entry });
    const key = rec.toString('utf8', 0, eq);
    const value = rec.subarray(eq + 1);
    const text = (): string => value.toString('utf8');
    const integer = (): number => {
      const s = text();
      if (!/^[0-9]+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new LayerError(`invalid pax ${key} ${JSON.stringify(s)}`, { entry });
      return Number(s);
    };
    switch (key) {
      case 'path':
        ov.path = value.toString('latin1'); // a byte string, as header names (see cstring)
        break;
      case 'linkpath':
        ov.linkpath = value.toString('latin1');
        break;
      case 'size':
        ov.size = integer();
        break;
      case 'uid':
        ov.uid = integer();
        break;
      case 'gid':
        ov.gid = integer();
        break;
      case 'mtime': {
        const m = /^(-?[0-9]+)(?:\.([0-9]*))?$/.exec(text());
        if (!m) throw new LayerError(`invalid pax mtime ${JSON.stringify(text())}`, { entry });
        ov.mtime = [Number(m[1]), Number(((m[2] ?? '') + '000000000').slice(0, 9))];
        break;
      }
      default:
        if (key.startsWith('SCHILY.xattr.')) setXattr(ov, key.slice('SCHILY.xattr.'.length), Buffer.from(value), entry);
      // Other records (atime, ctime, uname, gname, comments, GNU sparse...) do not change what we write.
    }
  }
}

/** The kernel's limit for one xattr value; and a cap on all of one entry's xattrs together. */
const MAX_XATTR_VALUE = 64 * 1024;
const MAX_XATTRS_TOTAL = 1024 * 1024;

/**
 * Records an xattr for the next entry: the same key again replaces the value (so repeated pax headers cannot pile
 * up memory), and `trusted.*` names are dropped: overlayfs keeps its private metadata there (redirects, origins,
 * whiteouts), and an image has no business setting it.
 */
function setXattr(ov: Overrides, name: string, value: Buffer, entry: string): void {
  if (name.startsWith('trusted.')) return;
  if (value.length > MAX_XATTR_VALUE) throw new LayerError(`xattr ${name} of ${value.length} bytes is too large`, { entry });
  for (let i = 0; i < ov.xattrs.length; i += 2) {
    if (ov.xattrs[i] === name) {
      ov.xattrs[i + 1] = value;
      return;
    }
  }
  ov.xattrs.push(name, value);
  let total = 0;
  for (let i = 1; i < ov.xattrs.length; i += 2) total += (ov.xattrs[i] as Uint8Array).length;
  if (total > MAX_XATTRS_TOTAL) throw new LayerError(`the xattrs of one entry exceed ${MAX_XATTRS_TOTAL} bytes`, { entry });
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * A NUL-terminated name field, as a byte string (one char per byte, latin1): file names are bytes, not always
 * UTF-8, and go to the addon exactly as they are ({@link LayerError} shows them decoded as UTF-8).
 */
function cstring(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString('latin1', off, end < 0 || end > off + len ? off + len : end);
}

/** A numeric header field: octal text, or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(b: Buffer, off: number, len: number, entry: string, field: string): number {
  const first = b[off] ?? 0;
  if (first & 0x80) {
    if (first === 0xff) throw new LayerError(`negative ${field} in tar header`, { entry });
    let v = first & 0x7f;
    for (let i = off + 1; i < off + len; i++) {
      v = v * 256 + (b[i] ?? 0);
      if (v > Number.MAX_SAFE_INTEGER) throw new LayerError(`${field} in tar header is too large`, { entry });
    }
    return v;
  }
  const s = b.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').replace(/^[ ]+/, '').replace(/\0.*$/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new LayerError(`invalid ${field} field ${JSON.stringify(s)} in tar header`, { entry });
  return parseInt(s, 8);
}

/** The checksum is the sum of the header's bytes with the checksum field read as spaces (some writers sign it). */
function checksumMatches(h: Buffer, expected: number): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : (h[i] ?? 0);
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return expected === unsigned || expected === signed;
}
