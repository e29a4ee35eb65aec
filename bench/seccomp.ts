/**
 * Seccomp cost benchmark: start-to-exit of `/bin/true` with Docker's default seccomp profile against the same
 * container with `seccomp: 'unconfined'`, in one process, interleaved so that both see the same machine. Also the
 * one-time cost of compiling the profile (paid by the first container of a process, then cached).
 *
 *   npm run bench:seccomp                     # build, then 200 runs of each
 *   node dist/bench/seccomp.js --n 50 --json
 *
 * The target: default / unconfined ≤ 1.1× (median). Needs root.
 * @module
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { Container, DOCKER_DEFAULT_CAPABILITIES } from '../lib/index.js';
import { compileSeccomp, compileUncached } from '../lib/container/seccomp/compile.js';
import { seccompForOptions } from '../lib/container/seccomp/resolve.js';
import { native } from '../lib/native.js';
import { count } from './args.js';
import { describeEnvironment, findCgroups, findMounts } from './host.js';
import { cell, summarize, table, type LatencySummary } from './stats.js';

const TARGET_RATIO = 1.1;
const MODES = ['default', 'unconfined'] as const;
type Mode = (typeof MODES)[number];

interface Options {
  n: number;
  fresh: number;
  warmup: number;
  rootfs: string;
  json: boolean;
}

const USAGE = `usage: node dist/bench/seccomp.js [--n N] [--warmup N] [--rootfs DIR] [--json]
  --n       measured runs per mode (default 200, or BENCH_N)
  --fresh   processes per mode that each start just one container, as a CLI would (default 20; 0 skips)
  --warmup  unmeasured runs per mode first (default 5)
  --rootfs  the busybox rootfs (default $BERTH_FIXTURES/busybox, made by test/prepare.sh)
  --json    print the results as JSON on stdout (progress goes to stderr)`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { n: { type: 'string' }, fresh: { type: 'string' }, warmup: { type: 'string' }, rootfs: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const fixtures = process.env.BERTH_FIXTURES || '/var/tmp/berth-fixtures';
  return {
    n: count('n', values.n ?? process.env.BENCH_N, 200, 1),
    fresh: count('fresh', values.fresh, 20, 0),
    warmup: count('warmup', values.warmup, 5, 0),
    rootfs: values.rootfs ?? join(fixtures, 'busybox'),
    json: values.json ?? false,
  };
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** One container start-to-exit (run = create + start + wait + remove), in ms. */
async function once(root: string, rootfs: string, mode: Mode, ids: Set<string>): Promise<number> {
  const t0 = performance.now();
  const r = await Container.run({
    root, rootfs, cmd: ['/bin/true'], stdout: 'ignore', stderr: 'ignore', seccomp: mode, signal: AbortSignal.timeout(30_000),
  });
  const ms = performance.now() - t0;
  ids.add(r.id);
  if (r.exitCode !== 0) throw new Error(`${mode}: /bin/true exited with ${r.exitCode}`);
  return ms;
}

/**
 * One container in a new Node process, as the CLI runs it: the process opens the state root and validates and
 * builds everything from cold, but finds the compiled profile in the state root's cache. Returns the time of
 * that container's run, measured in the child (Node's own start-up is the same for both modes and left out).
 */
async function inFreshProcess(root: string, rootfs: string, mode: Mode): Promise<number> {
  const lib = new URL('../lib/index.js', import.meta.url).href;
  const code = `
    const { Container } = await import(${JSON.stringify(lib)});
    const t0 = performance.now();
    const r = await Container.run({ root: ${JSON.stringify(root)}, rootfs: ${JSON.stringify(rootfs)}, cmd: ['/bin/true'],
      stdout: 'ignore', stderr: 'ignore', seccomp: ${JSON.stringify(mode)} });
    if (r.exitCode !== 0) throw new Error('exit ' + r.exitCode);
    console.log(performance.now() - t0);`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', code], { timeout: 60_000 });
  return Number(stdout.trim());
}

function median(xs: number[]): number {
  return summarize(xs).median;
}

interface Report {
  environment: ReturnType<typeof describeEnvironment>;
  options: Options;
  libseccomp: string;
  filter: { instructions: number; prologue: number; skippedSyscalls: readonly string[] };
  /** The first default-profile container of the process (compiles the profile) and the first unconfined one. */
  firstMs: Record<Mode, number>;
  /** Resolving the Docker profile for a container and compiling it, without and with the cache. */
  compileMs: { uncached: number; cached: number };
  latency: Record<Mode, LatencySummary>;
  ratio: number;
  /** One container per process (the CLI case), the compiled profile coming from the state root's cache. */
  fresh?: { latency: Record<Mode, LatencySummary>; ratio: number };
  targetMet: boolean;
  leaks: string[];
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run as root: containers need CAP_SYS_ADMIN');
  if (!existsSync(join(o.rootfs, 'bin', 'true'))) throw new Error(`no ${o.rootfs}/bin/true: run \`bash test/prepare.sh\` first`);
  const environment = describeEnvironment([]);
  const dir = mkdtempSync('/tmp/berth-bench-seccomp-');
  const root = join(dir, 'state');
  const ids = new Set<string>();
  try {
    // The state root's first open is not what is measured: one unconfined container first, not counted.
    await once(root, o.rootfs, 'unconfined', ids);
    const firstMs = {} as Record<Mode, number>;
    firstMs.default = await once(root, o.rootfs, 'default', ids); // resolves and compiles the profile
    firstMs.unconfined = await once(root, o.rootfs, 'unconfined', ids);

    const oci = seccompForOptions('default', DOCKER_DEFAULT_CAPABILITIES)!;
    const uncached: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      compileUncached(oci);
      uncached.push(performance.now() - t0);
    }
    const cached: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const t0 = performance.now();
      compileSeccomp(seccompForOptions('default', DOCKER_DEFAULT_CAPABILITIES)!);
      cached.push(performance.now() - t0);
    }
    const compiled = compileSeccomp(oci);

    progress(`${o.warmup} warm-up runs per mode, then ${o.n} measured runs per mode, interleaved`);
    for (let i = 0; i < o.warmup; i++) for (const m of MODES) await once(root, o.rootfs, m, ids);
    const samples: Record<Mode, number[]> = { default: [], unconfined: [] };
    for (let i = 0; i < o.n; i++) {
      // ABBA order: neither mode always runs right after the other.
      const order = i % 2 === 0 ? MODES : ([...MODES].reverse() as Mode[]);
      for (const m of order) samples[m].push(await once(root, o.rootfs, m, ids));
    }
    const latency = { default: summarize(samples.default), unconfined: summarize(samples.unconfined) };
    const ratio = latency.default.median / latency.unconfined.median;

    let fresh: Report['fresh'];
    if (o.fresh > 0) {
      progress(`${o.fresh} processes per mode, one container each`);
      const per: Record<Mode, number[]> = { default: [], unconfined: [] };
      for (let i = 0; i < o.fresh; i++) {
        const order = i % 2 === 0 ? MODES : ([...MODES].reverse() as Mode[]);
        for (const m of order) per[m].push(await inFreshProcess(root, o.rootfs, m));
      }
      const freshLatency = { default: summarize(per.default), unconfined: summarize(per.unconfined) };
      fresh = { latency: freshLatency, ratio: freshLatency.default.median / freshLatency.unconfined.median };
    }

    const leaks: string[] = [];
    for (const info of await Container.list({ root, all: true })) leaks.push(`container ${info.id} still recorded`);
    leaks.push(...findCgroups((name) => ids.has(name)).map((p) => `cgroup ${p}`));
    leaks.push(...findMounts([dir, o.rootfs]).map((m) => `mount ${m}`));

    const report: Report = {
      environment,
      options: o,
      libseccomp: native.seccompInfo().version,
      filter: { instructions: compiled.program.length / 8, prologue: compiled.prologue, skippedSyscalls: compiled.skipped },
      firstMs,
      compileMs: { uncached: median(uncached), cached: median(cached) },
      latency,
      ratio,
      ...(fresh ? { fresh } : {}),
      targetMet: ratio <= TARGET_RATIO && (fresh === undefined || fresh.ratio <= TARGET_RATIO),
      leaks,
    };
    if (o.json) console.log(JSON.stringify(report, null, 2));
    else print(report);
    return leaks.length > 0 ? 1 : 0;
  } finally {
    for (const info of await Container.list({ root, all: true }).catch(() => [])) {
      await (await Container.get(info.id, { root })).remove({ force: true }).catch(() => undefined);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

function print(r: Report): void {
  const e = r.environment;
  const lines = [
    `start-to-exit of /bin/true from ${r.options.rootfs}: Docker's default seccomp profile vs unconfined`,
    `kernel ${e.kernel}, ${e.cpus} CPUs (${e.cpuModel}), node ${e.node}, load average ${e.load.toFixed(2)} at start`,
    `libseccomp ${r.libseccomp}; the filter: ${r.filter.instructions} BPF instructions (${r.filter.prologue} of them berth's front, the rest libseccomp's)`,
    `profile syscalls this libseccomp does not know (left out, as Docker does): ${r.filter.skippedSyscalls.join(', ') || 'none'}`,
    `${r.options.n} runs per mode, interleaved, after ${r.options.warmup} warm-up runs each`,
    '',
    table([
      ['seccomp', 'median ms', 'p10 ms', 'p90 ms', 'first ms'],
      ...MODES.map((m) => [m, cell(r.latency[m].median), cell(r.latency[m].p10), cell(r.latency[m].p90), cell(r.firstMs[m], 1)]),
    ]),
    '',
    `compiling the profile: ${cell(r.compileMs.uncached)} ms once per process; ${cell(r.compileMs.cached, 4)} ms per container afterwards (cache)`,
    `default / unconfined (median): ${r.ratio.toFixed(3)}x`,
    ...(r.fresh
      ? [
          '',
          `one container per process (as the CLI; the profile comes compiled from the state root), ${r.options.fresh} processes per mode:`,
          table([
            ['seccomp', 'median ms', 'p10 ms', 'p90 ms'],
            ...MODES.map((m) => [m, cell(r.fresh!.latency[m].median), cell(r.fresh!.latency[m].p10), cell(r.fresh!.latency[m].p90)]),
          ]),
          `default / unconfined (median): ${r.fresh.ratio.toFixed(3)}x`,
        ]
      : []),
    `target ≤ ${TARGET_RATIO}x: ${r.targetMet ? 'met' : 'NOT met'}`,
    r.leaks.length === 0 ? 'cleanup: nothing left behind' : `cleanup: LEAKS\n  ${r.leaks.join('\n  ')}`,
  ];
  console.log(lines.join('\n'));
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
