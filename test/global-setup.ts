import { existsSync } from 'node:fs';
import { BUSYBOX, berthCgroups } from './helpers/env.js';

/** Runs once before the suite: the fixtures must exist (npm test runs test/prepare.sh first). */
export function setup(): void {
  if (!existsSync(`${BUSYBOX}/bin/busybox`)) {
    throw new Error(`missing fixture ${BUSYBOX}: run "bash test/prepare.sh" (npm test does)`);
  }
  if (process.getuid?.() !== 0) throw new Error('the berth test suite runs as root against the real kernel');
}

/** Runs once after the suite: nothing berth created may remain on the host. */
export function teardown(): void {
  const leftovers = berthCgroups();
  if (leftovers.length) throw new Error(`the test suite leaked cgroups: ${leftovers.join(', ')}`);
}
