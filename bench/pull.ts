/**
 * Pull-and-unpack benchmark: a Debian bookworm minbase image (one layer, made by debootstrap + umoci, cached) served
 * by a local docker-registry, pulled and unpacked by berth in this process, by containerd (`ctr images pull`, which
 * unpacks into its overlayfs snapshotter), and by skopeo copy + umoci unpack, all in the same run.
 *
 *   npm run bench:pull                      # build, then 5 measured runs per tool
 *   node dist/bench/pull.js --n 3 --json
 *
 * See bench/README.md for the method and its caveats. Needs root (unpacking keeps file owners; containerd).
 * @module
 */
import { count, parseOnly } from './args.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Image } from '../lib/index.js';
import { SnapshotStore } from '../lib/image/snapshot.js';
import { ImageStore } from '../lib/image/store.js';
import { describeEnvironment, findCgroups, findMounts, mounts, type Environment } from './host.js';
import { ensureMinbase, haveBinary, installMissing, MIRROR, SUITE, type MinbaseImage } from './minbase.js';
import { childProcesses, Daemon, processesMentioning, run } from './proc.js';
import { startRegistry, type BenchRegistry } from './registry.js';
import { cell, summarize, table, type LatencySummary } from './stats.js';

const TOOLS = ['berth', 'berth-zlib', 'containerd', 'containerd-pigz', 'skopeo-umoci', 'gunzip', 'tar'] as const;
type ToolName = (typeof TOOLS)[number];
const LABELS: Record<ToolName, string> = {
  berth: 'berth',
  'berth-zlib': 'berth, zlib (no ISA-L)',
  containerd: 'containerd',
  'containerd-pigz': 'containerd + unpigz',
  'skopeo-umoci': 'skopeo + umoci',
  gunzip: 'gzip -dc (floor)',
  tar: 'tar -xzf (floor)',
};
/** The issue's target, against containerd. */
const TARGET = { peer: 'containerd', maxRatio: 0.5 } as const;
const REPOSITORY = 'bench/minbase';
/** containerd namespace the benchmark pulls into. */
const CTR_NAMESPACE = 'berthbench';
const RUN_TIMEOUT_MS = 10 * 60_000;
const VERSIONED = ['containerd', 'ctr', 'skopeo', 'umoci', 'docker-registry', 'debootstrap', 'gzip', 'tar'];

interface Options {
  n: number;
  warmup: number;
  only: ToolName[] | null;
  cache: string;
  json: boolean;
}

const USAGE = `usage: node dist/bench/pull.js [--n N] [--warmup N] [--only berth,containerd,...] [--cache DIR] [--json]
  --n       measured runs per tool (default 5, or BENCH_N)
  --warmup  unmeasured runs per tool first (default 1; reported as "first")
  --only    comma-separated tools: ${TOOLS.join(', ')}
  --cache   where the debootstrap tree and the OCI image are kept between runs
            (default /var/tmp/berth-bench, or BERTH_BENCH_CACHE)
  --json    print the results as JSON on stdout (progress still goes to stderr)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      n: { type: 'string' }, warmup: { type: 'string' }, only: { type: 'string' }, cache: { type: 'string' },
      json: { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  return {
    n: count('n', values.n ?? process.env.BENCH_N, 5, 1),
    warmup: count('warmup', values.warmup, 1, 0),
    only: values.only ? parseOnly(values.only, TOOLS, 'tool') : null,
    cache: values.cache ?? (process.env.BERTH_BENCH_CACHE || '/var/tmp/berth-bench'),
    json: values.json ?? false,
  };
}

/** Progress and warnings go to stderr, so that `--json` output on stdout stays parseable. */
function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Entries below `dir` (not counting `dir`), without following symlinks. */
function countEntries(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    n++;
    if (e.isDirectory()) n += countEntries(join(dir, e.name));
  }
  return n;
}

/** Mount points under `dir`, unmounted deepest first; returns them (each one is a leak to report). */
function unmountUnder(dir: string): string[] {
  const targets = mounts().map((m) => m.target).filter((t) => t === dir || t.startsWith(`${dir}/`));
  for (const t of targets.sort((a, b) => b.length - a.length)) {
    try {
      execFileSync('umount', ['-l', t], { stdio: 'ignore' });
    } catch {
      // reported by the caller either way
    }
  }
  return targets;
}

/** Timed parts of one run, in ms; always has `total`. */
type Parts = Record<string, number>;

/** One tool under test. */
interface Tool {
  name: ToolName;
  /** Part names in report order, `total` last. */
  parts: string[];
  /** One cold run into fresh directories (removed afterwards); untimed setup and checks happen inside. */
  once(i: number): Promise<Parts>;
}

/** What the benchmark found out about each tool's result, from one run (file counts, snapshot keys). */
type Checks = Partial<Record<ToolName, string>>;

interface Workspace {
  dir: string;
  registry: BenchRegistry | undefined;
  /** containerd instances running right now (normally none between runs). */
  daemons: Set<Daemon>;
  /**
   * Remove each run's output right after it (only when the disk is too small to keep them all): see
   * {@link release}.
   */
  deleteEach: boolean;
  /** Leaks found while running (mounts left under a run's directory), reported at the end. */
  leaks: string[];
  cgroupsBefore: Set<string>;
}

/**
 * Done with a run's output. It stays until the end of the benchmark unless space is short: on ext4 without a
 * journal (this VM's disk) the inode allocator skips inodes freed in the last minute (`recently_deleted()`,
 * checked block by block), so the ~7,000 files a run deletes would make the file creation of the next runs slower,
 * and by how much would depend on the order of the tools. Deleting once, at the end, keeps the runs independent.
 */
function release(ws: Workspace, dir: string): void {
  if (ws.deleteEach) rmSync(dir, { recursive: true, force: true });
}

/** Flushes dirty pages of the previous run, so that its writeback does not land in the next measurement. */
function sync(): void {
  execFileSync('sync');
}

/**
 * berth as users run it. `zlib`: as on a machine without Debian's libisal2 (BERTH_GZIP=zlib makes the addon
 * inflate with zlib instead of ISA-L).
 */
function berthTool(ws: Workspace, ref: string, image: MinbaseImage, checks: Checks, signal: AbortSignal, zlib = false): Tool {
  return {
    name: zlib ? 'berth-zlib' : 'berth',
    parts: ['total', 'resolve+config'],
    async once(i) {
      const root = join(ws.dir, `${zlib ? 'berth-zlib' : 'berth'}-${i}`);
      const saved = process.env.BERTH_GZIP;
      if (zlib) process.env.BERTH_GZIP = 'zlib';
      else delete process.env.BERTH_GZIP;
      try {
        sync();
        const t0 = performance.now();
        let t1 = t0;
        // What a user runs: Image.pull, which unpacks each layer while it downloads (both verified).
        const pulled = await Image.pull(ref, {
          root,
          signal,
          onProgress: (e) => {
            if (e.type === 'blob' && e.kind === 'config' && e.status !== 'downloading') t1 = performance.now();
          },
        });
        const t2 = performance.now();
        const dirs = await new SnapshotStore(root).ensure(pulled, ImageStore.open(root), { signal });
        const dir = dirs[0];
        const chain = image.layer.diffId; // one layer: its chain ID is its diff ID
        if (dirs.length !== 1 || !dir?.endsWith(chain.slice('sha256:'.length)) || !existsSync(join(dir, 'etc', 'debian_version'))) {
          throw new Error(`unexpected snapshots ${JSON.stringify(dirs)} (wanted one, ${chain})`);
        }
        checks[zlib ? 'berth-zlib' : 'berth'] ??= `snapshot ${chain.slice(0, 19)}…: ${countEntries(dir)} entries`;
        return { total: t2 - t0, 'resolve+config': t1 - t0 };
      } finally {
        if (saved === undefined) delete process.env.BERTH_GZIP;
        else process.env.BERTH_GZIP = saved;
        release(ws, root);
      }
    },
  };
}

/** A containerd config with everything under `dir`, the CRI plugin off (it has nothing to do with a pull). */
function containerdConfig(dir: string, socket: string): string {
  return [
    'version = 2',
    `root = ${JSON.stringify(join(dir, 'root'))}`,
    `state = ${JSON.stringify(join(dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]',
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    '',
  ].join('\n');
}

/**
 * containerd as Debian installs it (`pigz: false`: its Go gzip reader; containerd uses the unpigz binary when one
 * is on PATH, so it is told not to), or with unpigz (`pigz: true`, when the pigz package is installed).
 */
function containerdTool(ws: Workspace, ref: string, image: MinbaseImage, checks: Checks, pigz = false): Tool {
  return {
    name: pigz ? 'containerd-pigz' : 'containerd',
    parts: ['total'],
    async once(i) {
      const dir = join(ws.dir, `ctd${pigz ? '-pigz' : ''}-${i}`);
      const socket = join(dir, 'sock');
      mkdirSync(join(dir, 'tmp'), { recursive: true });
      writeFileSync(join(dir, 'config.toml'), containerdConfig(dir, socket));
      // TMPDIR: where containerd's differ makes its temporary mounts, so that a leftover one is under our directory.
      const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', TMPDIR: join(dir, 'tmp') };
      if (!pigz) env.CONTAINERD_DISABLE_PIGZ = '1';
      const daemon = Daemon.start('containerd', ['--config', join(dir, 'config.toml')], join(dir, 'containerd.log'), env);
      ws.daemons.add(daemon);
      const ctr = (...args: string[]) => run('ctr', ['--address', socket, '-n', CTR_NAMESPACE, ...args], { timeoutMs: RUN_TIMEOUT_MS });
      try {
        await daemon.waitReady('containerd', () => ctr('version').then(() => true, () => false));
        sync();
        const { ms } = await ctr('images', 'pull', '--plain-http', ref);
        // Check that it did unpack: the layer's chain ID is a committed overlayfs snapshot.
        const chain = image.layer.diffId;
        const { stdout } = await ctr('snapshots', 'ls');
        const line = stdout.split('\n').find((l) => l.split(/\s+/)[0] === chain);
        if (!line || !/\bCommitted\b/.test(line)) throw new Error(`no committed snapshot ${chain} after the pull:\n${stdout}`);
        const checked = pigz ? 'containerd-pigz' : 'containerd';
        if (!checks[checked]) {
          const snapshots = join(dir, 'root', 'io.containerd.snapshotter.v1.overlayfs', 'snapshots');
          const fs = readdirSync(snapshots).map((id) => join(snapshots, id, 'fs')).find((p) => existsSync(join(p, 'etc', 'debian_version')));
          checks[checked] = `overlayfs snapshot ${chain.slice(0, 19)}… committed: ${fs ? countEntries(fs) : '?'} entries`;
        }
        return { total: ms };
      } finally {
        await daemon.stop();
        ws.daemons.delete(daemon);
        ws.leaks.push(...unmountUnder(dir).map((m) => `mount ${m} (containerd run ${i}; unmounted)`));
        release(ws, dir);
      }
    },
  };
}

function skopeoUmociTool(ws: Workspace, ref: string, checks: Checks): Tool {
  return {
    name: 'skopeo-umoci',
    parts: ['skopeo copy', 'umoci unpack', 'total'],
    async once(i) {
      const dir = join(ws.dir, `skopeo-${i}`);
      mkdirSync(dir);
      const image = `${join(dir, 'oci')}:latest`;
      const bundle = join(dir, 'bundle');
      try {
        sync();
        const copy = await run('skopeo', ['copy', '--insecure-policy', '--quiet', '--src-tls-verify=false', `docker://${ref}`, `oci:${image}`], {
          timeoutMs: RUN_TIMEOUT_MS,
        });
        const unpack = await run('umoci', ['unpack', '--image', image, bundle], { timeoutMs: RUN_TIMEOUT_MS });
        const rootfs = join(bundle, 'rootfs');
        if (!existsSync(join(rootfs, 'etc', 'debian_version'))) throw new Error(`umoci unpack left no ${rootfs}/etc/debian_version`);
        checks['skopeo-umoci'] ??= `bundle rootfs: ${countEntries(rootfs)} entries`;
        return { 'skopeo copy': copy.ms, 'umoci unpack': unpack.ms, total: copy.ms + unpack.ms };
      } finally {
        release(ws, dir);
      }
    },
  };
}

/** Decompression alone, from the cached blob to /dev/null: no network, no hashing, no files. */
function gunzipTool(image: MinbaseImage): Tool {
  return {
    name: 'gunzip',
    parts: ['total'],
    async once() {
      sync();
      return { total: (await run('gzip', ['-dc', image.layer.path], { stdout: 'ignore', timeoutMs: RUN_TIMEOUT_MS })).ms };
    },
  };
}

/** GNU tar extracting the cached blob: decompression and file creation, no network, no hashing. */
function tarTool(ws: Workspace, image: MinbaseImage): Tool {
  return {
    name: 'tar',
    parts: ['total'],
    async once(i) {
      const dir = join(ws.dir, `tar-${i}`);
      mkdirSync(dir);
      try {
        sync();
        return { total: (await run('tar', ['-xzf', image.layer.path, '-C', dir], { timeoutMs: RUN_TIMEOUT_MS })).ms };
      } finally {
        release(ws, dir);
      }
    },
  };
}

interface ToolResult {
  name: ToolName;
  label: string;
  parts: string[];
  /** Per part, in ms. */
  summary: Record<string, LatencySummary>;
  /** The first warm-up run's parts, in ms. */
  first?: Parts;
  samples: Record<string, number[]>;
  error?: string;
}

interface Comparison {
  tool: ToolName;
  peer: ToolName;
  /** berth median total / peer median total: below 1 is faster. */
  ratio: number;
  target?: { maxRatio: number; met: boolean };
}

function compare(results: readonly ToolResult[]): Comparison[] {
  const total = (name: ToolName) => results.find((r) => r.name === name && !r.error)?.summary.total?.median;
  const berth = total('berth');
  const out: Comparison[] = [];
  if (berth === undefined) return out;
  for (const peer of ['containerd', 'containerd-pigz', 'skopeo-umoci', 'tar', 'gunzip'] as const) {
    const p = total(peer);
    if (p === undefined) continue;
    const c: Comparison = { tool: 'berth', peer, ratio: berth / p };
    if (peer === TARGET.peer) c.target = { maxRatio: TARGET.maxRatio, met: c.ratio <= TARGET.maxRatio };
    out.push(c);
  }
  return out;
}

/**
 * Warm-up then measured rounds; in each round every tool runs once, the order rotating from round to round so that
 * no tool always follows the same one. A tool that fails is dropped; the others go on.
 */
async function measure(tools: readonly Tool[], o: Options, signal: AbortSignal): Promise<ToolResult[]> {
  const results = new Map<ToolName, ToolResult>(
    tools.map((t) => [t.name, { name: t.name, label: LABELS[t.name], parts: t.parts, summary: {}, samples: Object.fromEntries(t.parts.map((p) => [p, []])) }]),
  );
  const rounds = o.warmup + o.n;
  for (let round = 0; round < rounds; round++) {
    const warm = round < o.warmup;
    progress(warm ? `warm-up round ${round + 1}/${o.warmup}` : `round ${round - o.warmup + 1}/${o.n}`);
    for (let k = 0; k < tools.length; k++) {
      const tool = tools[(round + k) % tools.length]!;
      const r = results.get(tool.name)!;
      if (r.error) continue;
      if (signal.aborted) throw new Error('interrupted');
      try {
        const parts = await tool.once(round);
        progress(`  ${r.label}: ${tool.parts.map((p) => `${p} ${cell((parts[p] ?? NaN) / 1000)} s`).join(', ')}`);
        if (warm) r.first ??= parts;
        else for (const p of tool.parts) r.samples[p]!.push(parts[p] ?? Number.NaN);
      } catch (e) {
        if (signal.aborted) throw new Error('interrupted'); // a pull cut short by Ctrl-C is not a failure
        r.error = errorText(e);
        progress(`${r.label}: FAILED: ${r.error}`);
      }
    }
  }
  for (const r of results.values()) {
    if (r.error) continue;
    for (const p of r.parts) r.summary[p] = summarize(r.samples[p]!);
  }
  return [...results.values()];
}

/** Cgroups that containerd or this benchmark could have made (it should make none: no container runs). */
function ourCgroups(): string[] {
  return findCgroups((name) => name === CTR_NAMESPACE || name.startsWith('containerd'), 3);
}

/** Stops the daemons, removes the work directory, and returns everything that was left behind. */
async function cleanup(ws: Workspace, cache: string): Promise<string[]> {
  const leaks = [...ws.leaks];
  for (const d of ws.daemons) {
    leaks.push(`containerd ${d.child.pid} still running (stopped)`);
    await d.stop();
  }
  await ws.registry?.stop();
  leaks.push(...unmountUnder(ws.dir).map((m) => `mount ${m} (unmounted)`));
  rmSync(ws.dir, { recursive: true, force: true });
  if (existsSync(ws.dir)) leaks.push(`${ws.dir} could not be removed`);
  leaks.push(...findMounts([ws.dir, cache, '/tmp/containerd-mount']).map((m) => `mount ${m}`));
  leaks.push(...processesMentioning(ws.dir).map((p) => `process ${p}`));
  leaks.push(...childProcesses().map((p) => `child process ${p}`));
  leaks.push(...ourCgroups().filter((c) => !ws.cgroupsBefore.has(c)).map((c) => `cgroup ${c}`));
  return leaks;
}

interface Report {
  environment: Environment;
  options: Options;
  reference: string;
  image: Omit<MinbaseImage, 'built'> & { suite: string; mirror: string };
  setup: { built: string[]; pushMs: number };
  storage: Storage;
  results: ToolResult[];
  comparisons: Comparison[];
  checks: Checks;
  leaks: string[];
}

const MB = 1e6;

function printReport(r: Report): void {
  const e = r.environment;
  const o = r.options;
  const l = r.image.layer;
  const lines: string[] = [];
  lines.push(`pull + unpack of ${r.reference}: Debian ${r.image.suite} minbase (debootstrap), one layer`);
  lines.push(
    `layer: ${(l.size / MB).toFixed(1)} MB compressed (${l.mediaType.split('.').pop()}), ${(l.tarSize / MB).toFixed(1)} MB uncompressed tar, ` +
      `${l.entries} entries; ${r.image.architecture}`,
  );
  lines.push(`kernel ${e.kernel}, ${e.cpus} CPUs (${e.cpuModel}), node ${e.node}, load average ${e.load.toFixed(2)} at start`);
  for (const [bin, v] of Object.entries(e.versions)) lines.push(`${bin}: ${v ?? 'not installed'}`);
  lines.push(`setup: ${r.setup.built.length > 0 ? `built ${r.setup.built.join(' and ')}; ` : 'image from the cache; '}push to the registry ${cell(r.setup.pushMs / 1000)} s`);
  lines.push(`runs write to ${r.storage.filesystem}`);
  lines.push(
    r.storage.deleteEach
      ? `each run's output deleted right after it (${(r.storage.freeBytes / 1e9).toFixed(1)} GB free, ${(r.storage.neededBytes / 1e9).toFixed(1)} GB needed to keep them)`
      : `every run's output kept until the end (${(r.storage.neededBytes / 1e9).toFixed(1)} GB), then deleted`,
  );
  lines.push(`${o.n} measured runs per tool after ${o.warmup} warm-up run(s), tools interleaved; seconds`);
  lines.push('');
  const rows = [['tool', 'part', 'median', 'min', 'max', 'first']];
  for (const x of r.results) {
    x.parts.forEach((p, i) => {
      const s = x.summary[p];
      rows.push([i === 0 ? x.label : '', p, cell(s && s.median / 1000), cell(s && s.min / 1000), cell(s && s.max / 1000), cell(x.first && (x.first[p] ?? NaN) / 1000)]);
    });
  }
  lines.push(table(rows));
  for (const x of r.results.filter((x) => x.error)) lines.push(`${x.label} failed: ${x.error}`);
  lines.push('');
  for (const c of r.comparisons) {
    const target = c.target ? ` (target ≤ ${c.target.maxRatio}x: ${c.target.met ? 'met' : 'NOT met'})` : '';
    lines.push(`berth / ${LABELS[c.peer]}: ${c.ratio.toFixed(2)}x${target}`);
  }
  for (const [tool, text] of Object.entries(r.checks)) lines.push(`check ${LABELS[tool as ToolName]}: ${text}`);
  lines.push('');
  lines.push('notes: cold = fresh destination directories every run; the page cache is NOT dropped (the registry serves');
  lines.push('  the blob from memory, written there by the push), `sync` runs (untimed) before every run. containerd gets');
  lines.push('  a fresh root and is restarted before each run, its start-up untimed; its time is `ctr images pull` (fetch');
  lines.push('  into the content store + unpack into the overlayfs snapshotter). The CLIs are timed around their process.');
  lines.push('  Outputs are deleted at the end, not between runs: on ext4 without a journal, files deleted in the last');
  lines.push('  minutes slow down the creation of new ones (see README); wait a few minutes between two invocations.');
  lines.push(r.leaks.length === 0 ? 'cleanup: nothing left behind' : `cleanup: LEAKS\n  ${r.leaks.join('\n  ')}`);
  console.log(lines.join('\n'));
}

interface Storage {
  /** Filesystem of the work directory: type and mount options. */
  filesystem: string;
  freeBytes: number;
  /** What keeping every run's output until the end takes, roughly. */
  neededBytes: number;
  deleteEach: boolean;
}

/** The filesystem the runs write to, and whether it has room to keep every run's output until the end. */
function workStorage(dir: string, o: Options, image: MinbaseImage): Storage {
  const m = mounts()
    .filter((x) => dir === x.target || dir.startsWith(x.target.endsWith('/') ? x.target : `${x.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
  const { size, tarSize } = image.layer;
  const perRound: Record<ToolName, number> = {
    berth: size + tarSize, // the blob and the snapshot
    'berth-zlib': size + tarSize,
    containerd: size + tarSize,
    'containerd-pigz': size + tarSize,
    'skopeo-umoci': size + tarSize,
    gunzip: 0,
    tar: tarSize,
  };
  const round = TOOLS.filter((t) => wants(o, t)).reduce((sum, t) => sum + perRound[t], 0);
  // Small files round up to 4 KiB blocks; 25 % covers that and the metadata.
  const neededBytes = Math.ceil(round * (o.warmup + o.n) * 1.25);
  const st = statfsSync(dir);
  const freeBytes = st.bavail * st.bsize;
  return {
    filesystem: m ? `${m.type} (${m.source} on ${m.target}, ${m.options})` : 'unknown',
    freeBytes,
    neededBytes,
    deleteEach: freeBytes < neededBytes + 2e9,
  };
}

function wants(o: Options, tool: ToolName): boolean {
  return o.only === null || o.only.includes(tool);
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: unpacking keeps file owners, and containerd needs root');

  // Installed before the setup: a Ctrl-C during debootstrap must still let it unmount what debootstrap mounted.
  const ac = new AbortController();
  const onSignal = () => {
    progress('interrupted: stopping after the running step, then cleaning up');
    ac.abort();
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);

  // Tools: the registry and image makers are required; a missing peer is installed, or skipped if that fails.
  await installMissing(['umoci', 'skopeo', 'docker-registry'], progress);
  if (wants(o, 'containerd') || wants(o, 'containerd-pigz')) {
    try {
      await installMissing(['containerd', 'ctr', ...(wants(o, 'containerd-pigz') ? ['unpigz'] : [])], progress);
    } catch (e) {
      progress(`containerd skipped: cannot install it: ${errorText(e)}`);
    }
  }
  const image = await ensureMinbase(o.cache, progress);
  if (ac.signal.aborted) return 130;
  const environment = describeEnvironment(VERSIONED);

  const dir = mkdtempSync('/tmp/berth-bench-pull-');
  const storage = workStorage(dir, o, image);
  if (storage.deleteEach) {
    progress(`only ${(storage.freeBytes / 1e9).toFixed(1)} GB free in ${dir}: deleting each run's output right after it (see README)`);
  }
  const ws: Workspace = {
    dir,
    registry: undefined,
    daemons: new Set(),
    deleteEach: storage.deleteEach,
    leaks: [],
    cgroupsBefore: new Set(ourCgroups()),
  };
  const checks: Checks = {};
  let body: Pick<Report, 'reference' | 'setup' | 'storage' | 'results' | 'comparisons'>;
  try {
    ws.registry = await startRegistry(join(ws.dir, 'registry'));
    const reference = `${ws.registry.host}/${REPOSITORY}:latest`;
    progress(`pushing ${image.image} to ${reference}`);
    const push = await run('skopeo', ['copy', '--insecure-policy', '--quiet', '--dest-tls-verify=false', `oci:${image.image}`, `docker://${reference}`]);
    const tools: Tool[] = [];
    if (wants(o, 'berth')) tools.push(berthTool(ws, reference, image, checks, ac.signal));
    if (wants(o, 'berth-zlib')) tools.push(berthTool(ws, reference, image, checks, ac.signal, true));
    if (wants(o, 'containerd')) {
      if (haveBinary('containerd') && haveBinary('ctr')) tools.push(containerdTool(ws, reference, image, checks));
      else progress('containerd skipped: not installed');
    }
    if (wants(o, 'containerd-pigz')) {
      if (haveBinary('containerd') && haveBinary('ctr') && haveBinary('unpigz')) tools.push(containerdTool(ws, reference, image, checks, true));
      else progress('containerd + unpigz skipped: containerd or pigz (unpigz) not installed');
    }
    if (wants(o, 'skopeo-umoci')) tools.push(skopeoUmociTool(ws, reference, checks));
    if (wants(o, 'gunzip')) tools.push(gunzipTool(image));
    if (wants(o, 'tar')) tools.push(tarTool(ws, image));
    const results = await measure(tools, o, ac.signal);
    body = { reference, setup: { built: image.built, pushMs: push.ms }, storage, results, comparisons: compare(results) };
  } catch (e) {
    for (const leak of await cleanup(ws, o.cache)) progress(`leak: ${leak}`);
    if (ac.signal.aborted) return 130;
    throw e;
  }
  const leaks = await cleanup(ws, o.cache);
  const { built, ...imageFacts } = image;
  const report: Report = {
    environment,
    options: o,
    ...body,
    image: { ...imageFacts, suite: SUITE, mirror: MIRROR },
    setup: { ...body.setup, built },
    checks,
    leaks,
  };
  if (o.json) console.log(JSON.stringify(report, null, 2));
  else printReport(report);
  const berthFailed = report.results.some((r) => r.name === 'berth' && r.error);
  return ac.signal.aborted ? 130 : berthFailed || leaks.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench: ${errorText(e)}`);
    process.exit(1);
  },
);
