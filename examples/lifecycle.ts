/**
 * A long-running service with limits: create, start, watch its output, read its cgroup stats, stop it with
 * Docker's SIGTERM-then-SIGKILL, and let `await using` remove it.
 *
 *   node dist/examples/lifecycle.js [rootfs]
 */
import { Container } from '../lib/index.js';

const rootfs = process.argv[2] ?? '/var/tmp/berth-fixtures/busybox';

await using service = await Container.create({
  rootfs,
  name: `ticker-${process.pid}`,
  cmd: ['sh', '-c', 'trap "echo bye; exit 0" TERM; while :; do date +%T; sleep 0.2; done'],
  resources: { memory: '32m', pidsLimit: 16 },
});
service.stdout!.on('data', (chunk: Buffer) => process.stdout.write(`[ticker] ${chunk}`));
await service.start();
console.log('started', (await service.inspect()).name, 'pid', service.pid);

await new Promise((r) => setTimeout(r, 700));
const stats = service.stats();
console.log(`memory ${(stats.memory.usage / 1024).toFixed(0)} KiB of ${stats.memory.limit! / 1024 / 1024} MiB, ${stats.pids.current} task(s)`);

const exit = await service.stop({ timeout: 5 });
console.log('stopped:', exit);
