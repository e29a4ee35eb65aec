/**
 * Start-latency benchmark: start-to-exit of `/bin/true` from the busybox rootfs, berth in this process against
 * crun and runc on an equivalent OCI bundle, all in the same run.
 *
 *   npm run bench                         # build, then 200 sequential + 200 concurrent runs per runtime
 *   node dist/bench/start.js --n 50 --json
 *
 * See bench/README.md for the method and its caveats. Needs root (like the runtimes it compares).
 * @module
 */
import { count, parseOnly } from './args.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Container } from '../lib/index.js';
import {
  describeEnvironment, findCgroups, findMounts, findRuntimeState, hiddenUnderUnified, type Environment,
} from './host.js';
import { PeerDriver } from './peer-driver.js';
import { berthRun, berthSplit, IdSource, peerRuntime, type Runtime } from './runtimes.js';
import { cell, summarize, table, type LatencySummary } from './stats.js';

const PEERS = ['crun', 'runc'] as const;
/** Where crun and runc keep container state by default (`crun --version` prints its rundir). */
const PEER_STATE_DIRS: Record<(typeof PEERS)[number], string> = { crun: '/run/crun', runc: '/run/runc' };
/** The targets, against crun. */
const TARGET = { peer: 'crun', maxLatencyRatio: 0.5, minRateRatio: 2 } as const;
const RUN_TIMEOUT_MS = 30_000;
/** berth's parent cgroup in every hierarchy (its CGROUP_PARENT, like Docker's `docker`). */
const CGROUP_PARENT = 'berth';
const RUNTIME_NAMES = ['berth', ...PEERS];

interface Options {
  n: number;
  total: number;
  width: number;
  warmup: number;
  rootfs: string;
  only: string[] | null;
  json: boolean;
}

const USAGE = `usage: node dist/bench/start.js [--n N] [--total N] [--width N] [--warmup N] [--rootfs DIR]
                                [--only berth,crun,runc] [--json]
  --n       sequential runs per runtime (default 200, or BENCH_N)
  --total   containers in the concurrent phase (default 200, or BENCH_TOTAL)
  --width   containers kept in flight in the concurrent phase (default 4)
  --warmup  unmeasured runs per runtime before measuring (default 5; the first is reported as "cold")
  --rootfs  the busybox rootfs (default $BERTH_FIXTURES/busybox, made by test/prepare.sh)
  --only    comma-separated runtimes to run (berth means both berth paths)
  --json    print the results as JSON on stdout (progress still goes to stderr)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      n: { type: 'string' }, total: { type: 'string' }, width: { type: 'string' }, warmup: { type: 'string' },
      rootfs: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const fixtures = process.env.BERTH_FIXTURES || '/var/tmp/berth-fixtures';
  return {
    n: count('n', values.n ?? process.env.BENCH_N, 200, 1),
    total: count('total', values.total ?? process.env.BENCH_TOTAL, 200, 1),
    width: count('width', values.width, 4, 1),
    warmup: count('warmup', values.warmup, 5, 1),
    rootfs: values.rootfs ?? join(fixtures, 'busybox'),
    only: values.only ? parseOnly(values.only, RUNTIME_NAMES, 'runtime') : null,
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

/**
 * The peers' bundle: `crun spec` (or `runc spec`) defaults, which approximate Docker's namespaces and mounts,
 * running `/bin/true` from the shared rootfs without a terminal. Returns the namespaces it uses, for the report.
 */
function makeBundle(dir: string, rootfs: string, generator: string): string[] {
  mkdirSync(dir);
  execFileSync(generator, ['spec'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const path = join(dir, 'config.json');
  const spec = JSON.parse(readFileSync(path, 'utf8')) as {
    process: { args: string[]; terminal: boolean };
    root: { path: string; readonly: boolean };
    linux?: { namespaces?: { type: string }[] };
  };
  spec.process.args = ['/bin/true'];
  spec.process.terminal = false;
  spec.root = { path: rootfs, readonly: false };
  writeFileSync(path, JSON.stringify(spec, null, 2));
  return (spec.linux?.namespaces ?? []).map((n) => n.type);
}

/** The namespaces berth gives a container by default, read back from one container's spec. */
async function berthNamespaces(root: string, rootfs: string, ids: Set<string>): Promise<string[]> {
  const c = await Container.create({ root, rootfs, cmd: ['/bin/true'], stdout: 'ignore', stderr: 'ignore' });
  ids.add(c.id);
  try {
    return ((await c.inspect()).spec.linux?.namespaces ?? []).map((n) => n.type);
  } finally {
    await c.remove({ force: true });
  }
}

interface RuntimeResult {
  name: string;
  /** The first warm-up run: cold caches, and for berth the state root's first open. */
  coldMs?: number;
  latency?: LatencySummary;
  concurrent?: { total: number; width: number; wallMs: number; rate: number };
  error?: string;
}

/** Warm-up, N sequential runs, then the concurrent batch. A failure ends this runtime only. */
async function measure(rt: Runtime, o: Options, signal: AbortSignal): Promise<RuntimeResult> {
  const result: RuntimeResult = { name: rt.name };
  try {
    for (let i = 0; i < o.warmup; i++) {
      const ms = await rt.once();
      if (i === 0) result.coldMs = ms;
    }
    progress(`${rt.name}: ${o.n} sequential runs`);
    const samples: number[] = [];
    for (let i = 0; i < o.n; i++) {
      if (signal.aborted) throw new Error('interrupted');
      samples.push(await rt.once());
    }
    result.latency = summarize(samples);
    progress(`${rt.name}: ${o.total} runs, ${o.width} in flight`);
    const wallMs = await rt.batch(o.total, o.width);
    result.concurrent = { total: o.total, width: o.width, wallMs, rate: o.total / (wallMs / 1000) };
  } catch (e) {
    result.error = errorText(e);
    progress(`${rt.name}: FAILED: ${result.error}`);
  }
  return result;
}

interface Comparison {
  runtime: string;
  peer: string;
  /** runtime median / peer median: below 1 is faster. */
  latencyRatio?: number;
  /** runtime rate / peer rate: above 1 is faster. */
  rateRatio?: number;
  /** Only against the target peer. */
  targets?: { latency: boolean | null; rate: boolean | null };
}

function compare(results: readonly RuntimeResult[]): Comparison[] {
  const out: Comparison[] = [];
  for (const b of results.filter((r) => r.name.startsWith('berth'))) {
    for (const p of results.filter((r) => !r.name.startsWith('berth'))) {
      const c: Comparison = { runtime: b.name, peer: p.name };
      if (b.latency && p.latency) c.latencyRatio = b.latency.median / p.latency.median;
      if (b.concurrent && p.concurrent) c.rateRatio = b.concurrent.rate / p.concurrent.rate;
      if (p.name === TARGET.peer) {
        c.targets = {
          latency: c.latencyRatio === undefined ? null : c.latencyRatio <= TARGET.maxLatencyRatio,
          rate: c.rateRatio === undefined ? null : c.rateRatio >= TARGET.minRateRatio,
        };
      }
      out.push(c);
    }
  }
  return out;
}

/** Everything the benchmark created and must remove, and the state of the host before it started. */
interface Workspace {
  dir: string;
  stateRoot: string;
  bundle: string;
  drivers: PeerDriver[];
  /** Peer container ids. */
  ids: IdSource;
  /** berth container ids. */
  berthIds: Set<string>;
  rootfs: string;
  /** berth's shared parent cgroups (`<hierarchy>/berth`) that existed before the benchmark. */
  berthParentsBefore: Set<string>;
  hiddenBefore: string[] | null;
}

/**
 * Removes everything the benchmark made and checks the host: berth records, peer containers, the work directory,
 * cgroups, mounts. Returns what had leaked (removed where possible), for the report.
 */
async function cleanup(ws: Workspace, peers: readonly string[]): Promise<string[]> {
  const leaks: string[] = [];
  try {
    for (const info of await Container.list({ root: ws.stateRoot, all: true })) {
      leaks.push(`berth container ${info.id} still recorded`);
      await (await Container.get(info.id, { root: ws.stateRoot })).remove({ force: true });
    }
  } catch (e) {
    leaks.push(`berth state root could not be checked: ${errorText(e)}`);
  }
  await Promise.all(ws.drivers.map((d) => d.close()));
  leaks.push(...(await deletePeerLeftovers(ws, peers)));
  rmSync(ws.dir, { recursive: true, force: true });
  if (existsSync(ws.dir)) leaks.push(`${ws.dir} could not be removed`);
  leaks.push(...removeCgroupLeftovers(ws));
  leaks.push(...findMounts([ws.dir, ws.rootfs]).map((m) => `mount ${m}`));
  const hiddenAfter = hiddenUnderUnified();
  if (ws.hiddenBefore && hiddenAfter) {
    const before = new Set(ws.hiddenBefore);
    for (const n of hiddenAfter.filter((h) => !before.has(h))) leaks.push(`/sys/fs/cgroup/unified (hidden) entry ${n}`);
  }
  return leaks;
}

/** Peer containers still in their runtime's state directory (a run that hung or crashed): delete them. */
async function deletePeerLeftovers(ws: Workspace, peers: readonly string[]): Promise<string[]> {
  const leaks: string[] = [];
  for (const peer of peers) {
    const ids = findRuntimeState(PEER_STATE_DIRS[peer as (typeof PEERS)[number]], ws.ids.prefix);
    if (ids.length === 0) continue;
    leaks.push(...ids.map((id) => `${peer} container ${id} (deleted)`));
    // A fresh driver: on this host crun cannot even delete outside the namespace trick.
    const driver = await PeerDriver.start(ws.bundle, join(ws.dir, 'delete.err'));
    try {
      for (const id of ids) await driver.delete(peer, id);
    } finally {
      await driver.close();
    }
  }
  return leaks;
}

/**
 * Cgroups named after our containers (berth's or the peers'), and berth parent cgroups that did not exist before:
 * reported, and removed deepest first (rmdir only succeeds on an empty cgroup). Other processes' berth containers
 * (the test suite may run meanwhile) are left alone; berth itself removes a parent once it is unused, so a new
 * parent left behind is a leak of berth's.
 */
function removeCgroupLeftovers(ws: Workspace): string[] {
  const ours = (name: string) => ws.berthIds.has(name) || name.startsWith(ws.ids.prefix);
  const found = [
    ...findCgroups(ours),
    ...findCgroups((name) => name === CGROUP_PARENT, 1).filter((p) => !ws.berthParentsBefore.has(p)),
  ];
  const leaks: string[] = [];
  for (const path of found.sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(path);
      leaks.push(`cgroup ${path} (removed)`);
    } catch (e) {
      leaks.push(`cgroup ${path} (not removed: ${errorText(e)})`);
    }
  }
  return leaks;
}

interface Report {
  environment: Environment;
  options: Options;
  namespaces: Record<string, string[]>;
  results: RuntimeResult[];
  comparisons: Comparison[];
  leaks: string[];
}

function printReport(r: Report): void {
  const e = r.environment;
  const o = r.options;
  const lines: string[] = [];
  lines.push(`start-to-exit of /bin/true from ${o.rootfs}`);
  lines.push(`kernel ${e.kernel}, ${e.cpus} CPUs (${e.cpuModel}), node ${e.node}, load average ${e.load.toFixed(2)} at start`);
  lines.push(`cgroups: ${e.cgroups}`);
  for (const [bin, v] of Object.entries(e.versions)) lines.push(`${bin}: ${v ?? 'not installed'}`);
  for (const [who, ns] of Object.entries(r.namespaces)) lines.push(`namespaces ${who}: ${ns.join(', ')}`);
  lines.push(`sequential: ${o.n} runs each after ${o.warmup} warm-up runs; concurrent: ${o.total} containers, ${o.width} in flight`);
  lines.push('');
  const rows = [['runtime', 'median ms', 'p10 ms', 'p90 ms', 'cold ms', 'rate/s']];
  for (const x of r.results) {
    rows.push([x.name, cell(x.latency?.median), cell(x.latency?.p10), cell(x.latency?.p90), cell(x.coldMs, 1), cell(x.concurrent?.rate, 1)]);
  }
  lines.push(table(rows));
  for (const x of r.results.filter((x) => x.error)) lines.push(`${x.name} failed: ${x.error}`);
  lines.push('');
  for (const c of r.comparisons) lines.push(comparisonLine(c));
  lines.push('');
  lines.push('notes: berth runs in this process (a clone of Node, no runtime binary exec\'d per container);');
  lines.push('  crun/runc are timed by a long-lived bash driver around `<rt> run`, so each run includes bash\'s fork and');
  lines.push('  the exec of the runtime binary, which is inherent to a CLI runtime. The drivers live in a private mount');
  lines.push('  namespace where /sys/fs/cgroup/unified is hidden (crun refuses hybrid cgroups); runc uses it too, for symmetry.');
  lines.push(r.leaks.length === 0 ? 'cleanup: nothing left behind' : `cleanup: LEAKS\n  ${r.leaks.join('\n  ')}`);
  console.log(lines.join('\n'));
}

function verdict(ok: boolean | null | undefined): string {
  return ok === null || ok === undefined ? 'n/a' : ok ? 'met' : 'NOT met';
}

function comparisonLine(c: Comparison): string {
  const lat = c.latencyRatio === undefined ? 'n/a' : `${c.latencyRatio.toFixed(2)}x`;
  const rate = c.rateRatio === undefined ? 'n/a' : `${c.rateRatio.toFixed(2)}x`;
  if (!c.targets) return `${c.runtime} / ${c.peer}: latency ${lat}, rate ${rate}`;
  return (
    `${c.runtime} / ${c.peer}: latency ${lat} (target ≤ ${TARGET.maxLatencyRatio}x: ${verdict(c.targets.latency)}), ` +
    `rate ${rate} (target ≥ ${TARGET.minRateRatio}x: ${verdict(c.targets.rate)})`
  );
}

function wants(o: Options, runtime: string): boolean {
  return o.only === null || o.only.includes(runtime);
}

/** Starts one driver per concurrent slot; null (with the reason printed) when the namespace trick fails. */
async function startDrivers(ws: Workspace, width: number): Promise<PeerDriver[] | null> {
  try {
    for (let i = 0; i < width; i++) ws.drivers.push(await PeerDriver.start(ws.bundle, join(ws.dir, `driver-${i}.err`)));
    return ws.drivers;
  } catch (e) {
    progress(`peers skipped: cannot start a driver: ${errorText(e)}`);
    return null;
  }
}

type Measured = Pick<Report, 'namespaces' | 'results' | 'comparisons'>;

async function run(o: Options, env: Environment, ws: Workspace, signal: AbortSignal): Promise<Measured> {
  const namespaces: Record<string, string[]> = {};
  const runtimes: Runtime[] = [];
  if (wants(o, 'berth')) {
    const ctx = { root: ws.stateRoot, rootfs: o.rootfs, signal, timeoutMs: RUN_TIMEOUT_MS, ids: ws.berthIds };
    runtimes.push(berthRun(ctx), berthSplit(ctx));
  }
  const peers = PEERS.filter((p) => wants(o, p));
  const installed = peers.filter((p) => {
    if (env.versions[p]) return true;
    progress(`${p} skipped: not installed (apt-get install -y ${p})`);
    return false;
  });
  const generator = installed[0];
  if (generator) {
    namespaces[installed.join('/')] = makeBundle(ws.bundle, o.rootfs, generator);
    const drivers = await startDrivers(ws, o.width);
    if (drivers) {
      for (const binary of installed) {
        runtimes.push(peerRuntime({ binary, drivers, ids: ws.ids, signal, timeoutMs: RUN_TIMEOUT_MS }));
      }
    }
  }
  const results: RuntimeResult[] = [];
  for (const rt of runtimes) {
    if (signal.aborted) break;
    progress(`${rt.name}: ${o.warmup} warm-up runs`);
    results.push(await measure(rt, o, signal));
  }
  // After measuring, so that berth's cold run is the process's first container (including the state root's open).
  if (wants(o, 'berth') && !signal.aborted) {
    try {
      namespaces.berth = await berthNamespaces(ws.stateRoot, o.rootfs, ws.berthIds);
    } catch (e) {
      progress(`cannot read berth's namespaces: ${errorText(e)}`);
    }
  }
  return { namespaces, results, comparisons: compare(results) };
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: containers need CAP_SYS_ADMIN (so do crun and runc)');
  if (!existsSync(join(o.rootfs, 'bin', 'true'))) throw new Error(`no ${o.rootfs}/bin/true: run \`bash test/prepare.sh\` first`);
  const environment = describeEnvironment([...PEERS]);

  const ac = new AbortController();
  const onSignal = () => {
    progress('interrupted: stopping after the running containers, then cleaning up');
    ac.abort();
  };
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);

  const dir = mkdtempSync('/tmp/berth-bench-');
  const ws: Workspace = {
    dir,
    stateRoot: join(dir, 'state'),
    bundle: join(dir, 'bundle'),
    drivers: [],
    ids: new IdSource(`bench-${process.pid}-`),
    rootfs: o.rootfs,
    berthIds: new Set(),
    berthParentsBefore: new Set(findCgroups((name) => name === CGROUP_PARENT, 1)),
    hiddenBefore: hiddenUnderUnified(),
  };
  let body: Measured;
  try {
    body = await run(o, environment, ws, ac.signal);
  } catch (e) {
    for (const leak of await cleanup(ws, PEERS)) progress(`leak: ${leak}`);
    throw e;
  }
  const leaks = await cleanup(ws, PEERS);
  const report: Report = { environment, options: o, ...body, leaks };
  if (o.json) console.log(JSON.stringify(report, null, 2));
  else printReport(report);
  const berthFailed = report.results.some((r) => r.name.startsWith('berth') && r.error);
  return ac.signal.aborted ? 130 : berthFailed || leaks.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench: ${errorText(e)}`);
    process.exit(1);
  },
);
