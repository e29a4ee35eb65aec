// The iptables fallback when `nft` is missing (the lookup is pointed at a missing file; nothing is uninstalled).
// Everything runs in a child process inside a network namespace of its own (unshare -n): its bridges, iptables
// chains and forwarding switch are that namespace's and vanish with it; the host's firewall is never touched.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempRoot } from './helpers/env.js';

const { root, rootfs, cleanup } = tempRoot('netipt');
afterAll(cleanup);

const dist = new URL('../dist/lib/', import.meta.url).pathname;

describe('iptables fallback', () => {
  it('without nft, a network gets iptables chains: NAT, isolation from other networks, removed with it', () => {
    const script = join(root, '..', 'iptables.mjs');
    writeFileSync(script, `import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Container, Network } from ${JSON.stringify(join(dist, 'index.js'))};
import { firewallTools } from ${JSON.stringify(join(dist, 'network/nat.js'))};
firewallTools.nft = ['/nonexistent/nft'];
// This namespace's own forwarding switch (unshare -n made it): without it, nothing crosses bridges anyway.
writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
const root = ${JSON.stringify(root)}, rootfs = ${JSON.stringify(rootfs)};
const ipt = (...a) => execFileSync('iptables', ['-w', ...a], { encoding: 'utf8' });
const out = {};
const a = await Network.create({ root, name: 'ipt-a', subnet: '10.240.1.0/24' });
const b = await Network.create({ root, name: 'ipt-b', subnet: '10.240.2.0/24' });
out.info = await b.inspect();
out.nat = ipt('-t', 'nat', '-S');
out.filter = ipt('-S');
const srv = await Container.create({ root, rootfs, network: 'ipt-b', cmd: ['nc', '-ll', '-p', '7000', '-e', 'echo', 'reached'] });
await srv.start();
const ip = (await srv.inspect()).network.endpoint.ipAddress;
const probe = (net) => Container.run({ root, rootfs, network: net, cmd: ['sh', '-c', 'for i in 1 2 3 4 5; do r=$(nc -w 1 ' + ip + ' 7000 </dev/null) && [ -n "$r" ] && break; sleep 0.2; done; echo "r=$r"'] }).then((r) => r.stdout);
out.same = await probe('ipt-b');
out.cross = await probe('ipt-a');
// Control: without b's chain the same probe gets through, so the chain is what kept it out.
ipt('-F', 'BERTH_' + out.info.id.slice(0, 12));
out.crossUnfiltered = await probe('ipt-a');
await srv.remove({ force: true });
await new Promise((r) => setTimeout(r, 300));
for (const n of [a, b]) {
  for (let i = 0; ; i++) {
    try { await n.remove(); break; } catch (e) { if (i > 50) throw e; await new Promise((r) => setTimeout(r, 100)); }
  }
}
out.natAfter = ipt('-t', 'nat', '-S');
out.filterAfter = ipt('-S');
console.log(JSON.stringify(out));
`);
    const text = execFileSync('unshare', ['-n', process.execPath, script], { encoding: 'utf8', timeout: 60_000 });
    const out = JSON.parse(text) as Record<string, string> & { info: { id: string; firewall: string; bridge: string; warnings: string[] } };
    const chain = `BERTH_${out.info.id.slice(0, 12)}`;
    expect(out.info.firewall).toBe('iptables');
    expect(out.info.warnings.filter((w) => /nft|iptables/.test(w))).toEqual([]);
    expect(out.nat).toContain(`-A POSTROUTING -j ${chain}`);
    expect(out.nat).toContain(`-A ${chain} -s 10.240.2.0/24 ! -o ${out.info.bridge} -j MASQUERADE`);
    expect(out.filter).toContain(`-A FORWARD -j ${chain}`);
    expect(out.filter).toContain(`-A ${chain} -o ${out.info.bridge} -j DROP`);
    expect(out.same).toBe('r=reached\n');
    expect(out.cross).toBe('r=\n');
    expect(out.crossUnfiltered).toBe('r=reached\n');
    expect(out.natAfter).not.toContain('BERTH_');
    expect(out.filterAfter).not.toContain('BERTH_');
  });
});
