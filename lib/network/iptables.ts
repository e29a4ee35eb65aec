/**
 * The iptables fallback for hosts without nftables' `nft` command: the same rules as lib/network/nat.ts, in
 * chains of the network's own (`BERTH_<id>` in the nat and filter tables), reached by one jump rule each from
 * the built-in POSTROUTING and FORWARD chains. Removing the network removes the jumps and the chains; berth never
 * touches other rules.
 * @module
 */
import { execFile } from 'node:child_process';
import { NetworkSetupError } from './errors.js';
import type { NetworkRecord } from './store.js';

type Rules = Pick<NetworkRecord, 'subnet' | 'bridge' | 'internal'>;

/** The chain name of a network (28 characters at most, iptables' limit). */
export function iptablesChainName(networkId: string): string {
  return `BERTH_${networkId.slice(0, 12)}`;
}

function run(bin: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // -w: wait for the xtables lock instead of failing while another program changes rules.
    execFile(bin, ['-w', ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new NetworkSetupError(`iptables ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

/** The rules of a network's chains, as iptables argument lists, per table. */
export function iptablesRules(n: Rules): { nat: string[][]; filter: string[][] } {
  const br = n.bridge;
  const nat = n.internal ? [] : [['-s', n.subnet, '!', '-o', br, '-j', 'MASQUERADE']];
  const filter: string[][] = [['-i', br, '-o', br, '-j', 'ACCEPT']];
  if (n.internal) filter.push(['-i', br, '-j', 'DROP'], ['-o', br, '-j', 'DROP']);
  else {
    // Out, except into another berth bridge: a terminal ACCEPT there would keep that network's chain (which may
    // come later in FORWARD) from dropping what enters it, where nftables evaluates every network's chain.
    filter.push(
      ['-i', br, '!', '-o', 'berth+', '-j', 'ACCEPT'],
      ['-o', br, '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
      ['-o', br, '-j', 'DROP'],
    );
  }
  return { nat, filter };
}

/** Creates the network's chains and jumps (replacing leftovers of the same name). */
export async function installIptables(bin: string, n: Rules, chain: string): Promise<void> {
  await removeIptables(bin, chain);
  const rules = iptablesRules(n);
  const hooks = { nat: 'POSTROUTING', filter: 'FORWARD' } as const;
  for (const table of ['nat', 'filter'] as const) {
    if (!rules[table].length) continue;
    await run(bin, ['-t', table, '-N', chain]);
    for (const r of rules[table]) await run(bin, ['-t', table, '-A', chain, ...r]);
    // Matches only the network's own traffic, so first place is safe and keeps other rules from deciding first.
    await run(bin, ['-t', table, '-I', hooks[table], '1', '-j', chain]);
  }
}

/** Removes the network's jumps and chains; what does not exist is skipped. */
export async function removeIptables(bin: string, chain: string): Promise<void> {
  const hooks = { nat: 'POSTROUTING', filter: 'FORWARD' } as const;
  for (const table of ['nat', 'filter'] as const) {
    const listed = await run(bin, ['-t', table, '-S', chain]).then(() => true, () => false);
    if (!listed) continue;
    // Every jump to it (a crash between two steps may have left more than one).
    while (await run(bin, ['-t', table, '-D', hooks[table], '-j', chain]).then(() => true, () => false));
    await run(bin, ['-t', table, '-F', chain]);
    await run(bin, ['-t', table, '-X', chain]);
  }
}
