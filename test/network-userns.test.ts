// Containers with a user namespace on bridge networks: clone3 creates their network namespace (owned by their
// user namespace) and the engine wires it through /proc/<pid>/ns/net before the program starts. Traffic only goes
// to loopback and to namespaces these tests create.
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Container, Network } from '../lib/index.js';
import { tempRoot } from './helpers/env.js';
import { berthLinks, eventually } from './helpers/network.js';

const { root, rootfs, cleanup } = tempRoot('netuserns');
afterAll(cleanup);

/** Reads what 127.0.0.1:port says, retrying while the server starts. */
async function tcpRead(port: number): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const reply = await new Promise<string>((resolve) => {
      let got = '';
      const s = connect({ host: '127.0.0.1', port });
      s.on('data', (d) => (got += d));
      s.on('error', () => resolve(''));
      s.on('close', () => resolve(got));
    });
    if (reply || Date.now() > deadline) return reply;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('user namespaces on bridge networks', () => {
  let net: Network;
  beforeAll(async () => {
    net = await Network.create({ root, name: 'userns-net' });
  });
  afterAll(async () => {
    await net.remove();
  });

  it('a userns container reaches another by name, publishes a port, and leaves nothing behind', async () => {
    const netId = (await net.inspect()).id;
    const server = await Container.create({
      root, rootfs, userns: 'auto', network: 'userns-net', name: 'userns-srv',
      ports: [{ container: 8080, hostIp: '127.0.0.1' }],
      cmd: ['nc', '-ll', '-p', '8080', '-e', 'echo', 'from-userns'],
    });
    const ids = [server.id];
    try {
      await server.start();
      const info = await server.inspect();
      expect(info.userns?.auto).toBe(true);
      const ep = info.network!.endpoint!;
      expect(berthLinks()).toContain(ep.veth);
      // The published port reaches the server from the host.
      expect(await tcpRead(info.network!.ports[0]!.host)).toBe('from-userns\n');
      // Another userns container (run(): the program must not start before its interface is wired) reaches it
      // by name; root in it is not root on the host, and its network namespace is its own: with NET_ADMIN in its
      // user namespace it may change its own interface (the kernel refuses that in a namespace owned by the
      // host's user namespace).
      const client = await Container.run({
        root, rootfs, userns: 'auto', network: 'userns-net', capAdd: ['NET_ADMIN'],
        cmd: ['sh', '-c', 'echo "reply:$(nc -w 2 userns-srv 8080 </dev/null)"; ip -o -4 addr show eth0 | awk \'{print "addr:" $4}\'; ip route | grep default; ip link set dev eth0 mtu 1400 && ip -o link show eth0 | grep -o "mtu [0-9]*"; cat /proc/self/uid_map'],
      });
      expect(client.stderr).toBe('');
      expect(client.stdout).toContain('reply:from-userns\n');
      expect(client.stdout).toMatch(/addr:\d+\.\d+\.\d+\.\d+\/\d+\n/);
      expect(client.stdout).toContain(`default via ${(await net.inspect()).gateway} dev eth0`);
      expect(client.stdout).toContain('mtu 1400\n');
      expect(client.stdout).toMatch(/^\s+0\s+[1-9]\d*\s+65536$/m);
      ids.push(client.id);
    } finally {
      await server.remove({ force: true });
    }
    expect(await eventually(() => readdirSync(join(root, 'networks', netId, 'leases')).length === 0)).toBe(true);
    expect(await eventually(() => !berthLinks().some((l) => ids.some((id) => l.startsWith(`bveth${id.slice(0, 8)}`))))).toBe(true);
    expect(readdirSync(join(root, 'containers'))).toEqual([]);
  });

  it('a created userns container can be connected to a second network', async () => {
    const second = await Network.create({ root, name: 'userns-second' });
    try {
      const c = await Container.create({ root, rootfs, userns: 'auto', network: 'userns-net', cmd: ['sh', '-c', 'ip -o -4 addr show eth1 | awk \'{print "addr:" $4}\''] });
      // And one given at create: wired into the namespace clone3 made, as eth1, before the program runs.
      const r = await Container.run({ root, rootfs, userns: 'auto', network: 'userns-net', networks: [{ name: 'userns-second' }], cmd: ['sh', '-c', 'ip -o -4 addr show | awk \'{print $2}\''] });
      expect(r.stdout).toBe('lo\neth0\neth1\n');
      try {
        const ep = await second.connect(c);
        await c.start();
        await c.wait();
        let out = '';
        for await (const l of c.logs()) out += l.log;
        expect(out).toBe(`addr:${ep.ipAddress}/${ep.prefixLength}\n`);
      } finally {
        await c.remove({ force: true });
      }
    } finally {
      await eventually(() => readdirSync(join(root, 'networks', second.id, 'leases')).length === 0);
      await second.remove();
    }
  });
});
