#!/usr/bin/env node
/**
 * The `berth` command. The docker-like CLI (run, ps, exec, logs, pull, ...) is not built yet; until then this entry
 * point answers `version` and says so plainly instead of pretending. Use the library API meanwhile.
 * @module
 */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
const [command] = process.argv.slice(2);

if (command === 'version' || command === '--version' || command === '-v') {
  process.stdout.write(`berth ${pkg.version} (node ${process.version}, ${process.platform}/${process.arch})\n`);
  process.exit(0);
}
process.stderr.write(
  'berth: the command-line interface is not implemented yet; only "berth version" works.\n' +
    'Use the library: import { Container } from \'berth\' (see the README).\n',
);
process.exit(command === undefined || command === '--help' || command === 'help' ? 0 : 125);
