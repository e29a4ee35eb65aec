/**
 * An interactive shell in a container, from a Node program: what `berth run -it --rm busybox sh` does, with the
 * library alone. The container gets a terminal of its own (`tty: true`, opened in its devpts); this program puts
 * its own terminal in raw mode, copies keys in and the screen out, and passes window size changes on.
 *
 *   node dist/examples/shell.js [rootfs] [command...]    # default: the busybox fixture, sh
 */
import { Container } from '../lib/index.js';

const rootfs = process.argv[2] ?? process.env.BERTH_EXAMPLE_ROOTFS ?? '/var/tmp/berth-fixtures/busybox';
const cmd = process.argv.length > 3 ? process.argv.slice(3) : ['sh'];
if (!process.stdin.isTTY || !process.stdout.isTTY) {
  console.error('run this from a terminal: it gives you an interactive shell');
  process.exit(1);
}

await using c = await Container.create({
  rootfs,
  cmd,
  hostname: 'shell',
  tty: true,
  stdin: 'pipe',
  consoleSize: { rows: process.stdout.rows, columns: process.stdout.columns },
});

// Keys go to the container's terminal as typed (^C included: its line discipline signals the program).
process.stdin.setRawMode(true);
process.stdin.pipe(c.stdin!);
c.stdout!.pipe(process.stdout);
const onResize = () => void c.resize({ rows: process.stdout.rows, columns: process.stdout.columns }).catch(() => undefined);
process.stdout.on('resize', onResize);

await c.start();
const { exitCode } = await c.wait();
process.stdout.off('resize', onResize);
process.stdin.setRawMode(false);
process.stdin.unpipe(c.stdin!);
process.stdin.pause();
console.log(`\r\n[shell exited with ${exitCode}]`);
process.exitCode = exitCode;
