// The addon's rtnetlink primitives, exercised only inside network namespaces this test creates (never the host's).
import { execFileSync } from 'node:child_process';
import { closeSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../lib/native.js';
import { BUSYBOX } from './helpers/env.js';

const fds: number[] = [];
afterAll(() => fds.forEach((fd) => closeSync(fd)));

async function netns(): Promise<{ ns: number; sock: number }> {
  const [ns, sock] = await native.netnsCreate();
  fds.push(ns, sock);
  return { ns, sock };
}

/** Runs a command inside the namespace held by fd `ns` of this process. */
function inNs(ns: number, cmd: string): string {
  return execFileSync('nsenter', [`--net=/proc/${process.pid}/fd/${ns}`, 'sh', '-c', cmd], { encoding: 'utf8' });
}

describe('netlink primitives', () => {
  it('builds a bridge with a veth port whose peer lives in another namespace, with address, MTU and route', async () => {
    const outside = await netns();
    const inside = await netns();
    await native.netlinkRun(outside.sock, [
      { op: 'bridge', name: 'tbr0', mtu: 1450, up: true },
      { op: 'addr', name: 'tbr0', address: '10.1.0.1', prefix: 24, broadcast: '10.1.0.255' },
      { op: 'veth', name: 'tveth0', peer: 'eth0', peerNsFd: inside.ns, master: 'tbr0', mtu: 1450, up: true, peerMac: '02:42:0a:01:00:02' },
    ]);
    await native.netlinkRun(inside.sock, [
      { op: 'link', name: 'lo', up: true },
      { op: 'link', name: 'eth0', up: true },
      { op: 'addr', name: 'eth0', address: '10.1.0.2', prefix: 24, broadcast: '10.1.0.255' },
      { op: 'route', name: 'eth0', prefix: 0, gateway: '10.1.0.1' },
    ]);
    const link = inNs(inside.ns, 'ip -o link show eth0');
    expect(link).toMatch(/mtu 1450/);
    expect(link).toMatch(/02:42:0a:01:00:02/);
    expect(inNs(inside.ns, 'ip -o -4 addr show eth0')).toMatch(/inet 10\.1\.0\.2\/24 brd 10\.1\.0\.255/);
    expect(inNs(inside.ns, 'ip route show default')).toMatch(/default via 10\.1\.0\.1 dev eth0/);
    expect(inNs(outside.ns, 'ip -o link show tveth0')).toMatch(/master tbr0/);
    // Traffic really flows across the bridge (both ends are namespaces of this test).
    expect(inNs(inside.ns, `${BUSYBOX}/bin/busybox ping -c 1 -W 3 10.1.0.1`)).toMatch(/1 packets received/);
    // Deleting the host end removes the pair; deleting it again is an error unless asked to ignore it.
    await native.netlinkRun(outside.sock, [{ op: 'delLink', name: 'tveth0' }]);
    expect(inNs(inside.ns, 'ip -o link')).not.toMatch(/eth0/);
    await native.netlinkRun(outside.sock, [{ op: 'delLink', name: 'tveth0', ignoreMissing: true }]);
    await expect(native.netlinkRun(outside.sock, [{ op: 'delLink', name: 'tveth0' }])).rejects.toMatchObject({ errno: 19, index: 0 });
  });

  it('reports which op failed and why', async () => {
    const { sock } = await netns();
    await native.netlinkRun(sock, [{ op: 'bridge', name: 'tbr1' }]);
    const err = await native.netlinkRun(sock, [{ op: 'link', name: 'lo', up: true }, { op: 'bridge', name: 'tbr1' }]).catch((e) => e);
    expect(err).toMatchObject({ errno: 17, index: 1, syscall: 'create bridge' });
    await expect(native.netlinkRun(sock, [{ op: 'addr', name: 'nosuch0', address: '10.2.0.1', prefix: 24 }])).rejects.toMatchObject({ errno: 19 });
  });

  it('opens a socket inside an existing namespace', async () => {
    const { ns } = await netns();
    const sock = await native.netnsSocket(ns);
    fds.push(sock);
    await native.netlinkRun(sock, [{ op: 'bridge', name: 'tbr2', up: true }]);
    expect(inNs(ns, 'ip -o link show tbr2')).toMatch(/tbr2/);
  });
});
