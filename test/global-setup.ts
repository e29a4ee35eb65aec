import { existsSync } from 'node:fs';
import { BUSYBOX } from './helpers/env.js';

/** Runs once before the suite: the fixtures must exist (npm test runs test/prepare.sh first). */
export function setup(): void {
  if (!existsSync(`${BUSYBOX}/bin/busybox`)) {
    throw new Error(`missing fixture ${BUSYBOX}: run "bash test/prepare.sh" (npm test does)`);
  }
  if (process.getuid?.() !== 0) throw new Error('the berth test suite runs as root against the real kernel');
}

// The leak check runs after the suite as its own step (test/check-leaks.mjs): vitest does not fail a run for an
// error thrown in global teardown.
