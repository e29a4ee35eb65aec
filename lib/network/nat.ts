/**
 * nftables rules of a bridge network, each network in a table of its own (`ip berth_<id>`), so creating and
 * removing a network never touches the host's other tables or another network's rules:
 * - outbound NAT: traffic from the subnet leaving through another interface is masqueraded (not `internal`);
 * - forwarding: the network's containers may go out (not `internal`), replies come back, and nothing from outside
 *   the bridge (another network, the outside) may open connections into it.
 * The global `net.ipv4.ip_forward` switch is the host's: berth turns it on only when asked (see docs/network.md).
 * @module
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { NetworkSetupError } from './errors.js';
import { iptablesChainName, installIptables, removeIptables } from './iptables.js';
import type { NetworkRecord } from './store.js';

/**
 * Where the firewall tools are looked for, first found wins. Tests point these at missing files to exercise the
 * fallbacks (nft missing: iptables; both missing: no rules) without uninstalling anything.
 */
export const firewallTools = {
  nft: ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft', '/bin/nft'],
  iptables: ['/usr/sbin/iptables', '/sbin/iptables', '/usr/bin/iptables', '/bin/iptables'],
};

/** The nft binary, or undefined when nftables' tool is not installed. */
export function nftPath(): string | undefined {
  return firewallTools.nft.find((p) => existsSync(p));
}

/** The iptables binary, or undefined when it is not installed. */
export function iptablesPath(): string | undefined {
  return firewallTools.iptables.find((p) => existsSync(p));
}

/**
 * The firewall a new network's rules go to: nftables (a table of its own) where `nft` exists, else iptables
 * (chains of its own), else none (no NAT; the network says so in its warnings).
 */
export function pickFirewall(networkId: string): { natTable: string | null; firewall?: 'iptables' } {
  if (nftPath()) return { natTable: natTableName(networkId) };
  if (iptablesPath()) return { natTable: iptablesChainName(networkId), firewall: 'iptables' };
  return { natTable: null };
}

/** Installs a network's rules with the firewall recorded for it. */
export async function installNetworkRules(r: Pick<NetworkRecord, 'subnet' | 'bridge' | 'internal' | 'natTable' | 'firewall'>): Promise<void> {
  if (!r.natTable) return;
  if (r.firewall === 'iptables') {
    const bin = iptablesPath();
    if (!bin) throw new NetworkSetupError('iptables is not installed any more: cannot restore the rules of this network');
    await installIptables(bin, r, r.natTable);
  } else await installRules(r, r.natTable);
}

/** Removes a network's rules (whatever is left of them). */
export async function removeNetworkRules(r: Pick<NetworkRecord, 'natTable' | 'firewall'>): Promise<void> {
  if (!r.natTable) return;
  if (r.firewall === 'iptables') {
    const bin = iptablesPath();
    if (bin) await removeIptables(bin, r.natTable);
  } else await removeRules(r.natTable);
}

/** The table name for a network id. */
export function natTableName(networkId: string): string {
  return `berth_${networkId.slice(0, 12)}`;
}

function nft(args: string[], input?: string): Promise<string> {
  const bin = nftPath();
  if (!bin) return Promise.reject(new NetworkSetupError('nftables (the nft command) is not installed: apt-get install nftables'));
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new NetworkSetupError(`nft ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** The ruleset of a network, as one nft script (applied atomically). */
export function natRules(n: Pick<NetworkRecord, 'subnet' | 'bridge' | 'internal'>, table: string): string {
  const br = JSON.stringify(n.bridge);
  const lines = [`table ip ${table} {`];
  if (!n.internal) {
    lines.push(
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      `    ip saddr ${n.subnet} oifname != ${br} masquerade`,
      '  }',
    );
  }
  lines.push('  chain forward {', '    type filter hook forward priority filter; policy accept;');
  lines.push(`    iifname ${br} oifname ${br} accept`);
  if (n.internal) {
    lines.push(`    iifname ${br} drop`, `    oifname ${br} drop`);
  } else {
    lines.push(`    iifname ${br} accept`, `    oifname ${br} ct state established,related accept`, `    oifname ${br} drop`);
  }
  lines.push('  }', '}');
  return `${lines.join('\n')}\n`;
}

/** Creates the network's table (replacing a leftover of the same name). */
export async function installRules(n: Pick<NetworkRecord, 'subnet' | 'bridge' | 'internal'>, table: string): Promise<void> {
  await removeRules(table);
  await nft(['-f', '-'], natRules(n, table));
}

/** Deletes the network's table; nothing happens when it does not exist. */
export async function removeRules(table: string): Promise<void> {
  if (!nftPath()) return;
  try {
    await nft(['delete', 'table', 'ip', table]);
  } catch (e) {
    if (!/No such file|does not exist/i.test((e as Error).message)) throw e;
  }
}
