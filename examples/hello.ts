/**
 * The main job in one file: run a command in an isolated container from a root filesystem, the way
 * `docker run --rm` would, and show what the container sees.
 *
 *   npm start                         # builds, makes the busybox rootfs, runs this
 *   node dist/examples/hello.js [rootfs] [command...]
 */
import { Container } from '../lib/index.js';

const rootfs = process.argv[2] ?? process.env.BERTH_EXAMPLE_ROOTFS ?? '/var/tmp/berth-fixtures/busybox';
const cmd = process.argv.length > 3
  ? process.argv.slice(3)
  : ['sh', '-c', 'echo "hello from $(hostname), pid $$, uid $(id -u)"; echo "processes I can see:"; ps -o pid,comm'];

const started = performance.now();
const result = await Container.run({
  rootfs,
  cmd,
  hostname: 'hello-berth',
  resources: { memory: '64m', pidsLimit: 64, cpus: 1 },
});
process.stdout.write(result.stdout);
process.stderr.write(result.stderr);
console.log(`exit code ${result.exitCode} after ${(performance.now() - started).toFixed(1)} ms`);
process.exitCode = result.exitCode;
