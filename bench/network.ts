/**
 * Network benchmark: start-to-exit of `/bin/true` (Container.run, removal included) on the default bridge with one
 * published port, against `network: 'none'`, interleaved in one run so both see the same machine load.
 *
 *   npm run build && node dist/bench/network.js [--n 100] [--json]
 *
 * The target: bridge ≤ 3× none. Needs root. Uses a temporary state root and a copy of the busybox rootfs;
 * removes its network (bridge, nftables table) at the end.
 * @module
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Container, Network, type ContainerOptions } from '../lib/index.js';
import { count } from './args.js';
import { cell, summarize, table } from './stats.js';

const TARGET_RATIO = 3;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { n: { type: 'string' }, json: { type: 'boolean' } } });
  const n = count('n', values.n ?? process.env.BENCH_N, 100, 1);
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-network-'));
  const root = join(dir, 'state');
  const rootfs = join(dir, 'rootfs');
  cpSync(process.env.BERTH_FIXTURES ? join(process.env.BERTH_FIXTURES, 'busybox') : '/var/tmp/berth-fixtures/busybox', rootfs, {
    recursive: true, verbatimSymlinks: true,
  });
  const modes: Record<string, ContainerOptions> = {
    // No network option: a private namespace with loopback and no /etc files (berth's default).
    'no network option': {},
    none: { network: 'none' },
    'bridge + 1 port': { network: 'bridge', ports: [{ container: 80, hostIp: '127.0.0.1' }] },
  };
  const samples: Record<string, number[]> = Object.fromEntries(Object.keys(modes).map((k) => [k, []]));
  try {
    for (const m of Object.values(modes)) for (let i = 0; i < 5; i++) await Container.run({ root, rootfs, cmd: ['true'], ...m });
    for (let i = 0; i < n; i++) {
      for (const [name, m] of Object.entries(modes)) {
        const t = performance.now();
        await Container.run({ root, rootfs, cmd: ['true'], ...m });
        samples[name]!.push(performance.now() - t);
      }
      if ((i + 1) % 25 === 0) process.stderr.write(`${i + 1}/${n}\n`);
    }
  } finally {
    for (const net of await Network.list({ root })) await (await Network.get(net.id, { root })).remove();
    rmSync(dir, { recursive: true, force: true });
  }
  const plain = summarize(samples['no network option']!);
  const none = summarize(samples.none!);
  const bridge = summarize(samples['bridge + 1 port']!);
  const ratio = bridge.median / none.median;
  if (values.json) {
    console.log(JSON.stringify({ n, plain, none, bridge, ratio, target: TARGET_RATIO }));
    return;
  }
  console.log(table([
    ['mode', 'median ms', 'p10', 'p90'],
    ['no network option', cell(plain.median), cell(plain.p10), cell(plain.p90)],
    ['none', cell(none.median), cell(none.p10), cell(none.p90)],
    ['bridge + 1 port', cell(bridge.median), cell(bridge.p10), cell(bridge.p90)],
  ]));
  console.log(`bridge/none: ${ratio.toFixed(2)}× (target ≤ ${TARGET_RATIO}×: ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'})`);
}

await main();
