/**
 * Runs the peer runtimes (crun, runc) for the benchmarks from a long-lived bash "driver" in a private mount
 * namespace, so that each measurement is only the runtime's own fork+exec and work: the unshare and shell start-up
 * are paid once per driver, not once per container.
 *
 * Protocol: Node writes `<verb> <runtime binary> <container id>` lines (verb `run` or `delete`); the driver answers
 * each with one line `<id> <exit status> <start> <end> <stderr on failure>`, the times being bash's $EPOCHREALTIME
 * (seconds.microseconds) taken right around the runtime's execution.
 * @module
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * The driver. On a hybrid cgroup host crun refuses to run ("cgroups in hybrid mode not supported"), so the
 * cgroup2 mount at /sys/fs/cgroup/unified is hidden in this namespace only. A tmpfs goes in its place because
 * crun then treats that directory as a cgroup2 root and writes `<id>/cgroup.procs` into it and never removes
 * them: without the tmpfs they would pile up in the host's /sys/fs/cgroup tmpfs, under the cgroup2 mount where
 * nobody sees them. The tmpfs dies with the namespace. It has no size= limit on purpose: every run leaves a
 * page or two there, and a small limit ends in ENOSPC for crun after a few hundred runs (only what is written
 * is used, so the default limit reserves nothing).
 */
const DRIVER_SCRIPT = String.raw`
bundle=$1
errfile=$2
if mountpoint -q /sys/fs/cgroup/unified; then
  umount /sys/fs/cgroup/unified || { echo "fatal cannot unmount /sys/fs/cgroup/unified"; exit 1; }
  mount -t tmpfs -o mode=755 bench-scratch /sys/fs/cgroup/unified \
    || { echo "fatal cannot mount a scratch tmpfs on /sys/fs/cgroup/unified"; exit 1; }
fi
[ -n "$EPOCHREALTIME" ] || { echo "fatal this bash has no EPOCHREALTIME (needs bash 5)"; exit 1; }
cd "$bundle" || { echo "fatal cannot cd to $bundle"; exit 1; }
echo ready
while read -r verb runtime id; do
  t0=$EPOCHREALTIME
  if [ "$verb" = delete ]; then
    "$runtime" delete -f "$id" </dev/null >/dev/null 2>"$errfile"
  else
    "$runtime" run -b "$bundle" "$id" </dev/null >/dev/null 2>"$errfile"
  fi
  rc=$?
  t1=$EPOCHREALTIME
  msg=
  if [ "$rc" -ne 0 ]; then
    # A failed run may leave its state behind; removing it is not part of the measurement any more.
    [ "$verb" = run ] && "$runtime" delete -f "$id" </dev/null >/dev/null 2>&1
    msg=$(tr '\n' ' ' <"$errfile" | head -c 500)
  fi
  echo "$id $rc $t0 $t1 $msg"
done
rm -f "$errfile"
`;

/** One answer of the driver. Times are microseconds since the epoch (exact integers, unlike float seconds). */
export interface PeerResult {
  id: string;
  exitCode: number;
  startUs: number;
  endUs: number;
  /** The runtime's stderr when it failed. */
  error: string;
}

interface Pending {
  resolve: (r: PeerResult) => void;
  reject: (e: Error) => void;
}

/** `1764270000.123456` → microseconds. Splitting avoids the float rounding of parseFloat at this magnitude. */
export function epochMicros(text: string): number {
  const [sec = '', frac = ''] = text.split('.');
  return Number(sec) * 1e6 + Number(frac.padEnd(6, '0').slice(0, 6));
}

function parseAnswer(line: string): PeerResult {
  const [id = '', rc = '', t0 = '', t1 = '', ...rest] = line.split(' ');
  return { id, exitCode: Number(rc), startUs: epochMicros(t0), endUs: epochMicros(t1), error: rest.join(' ').trim() };
}

/** A driver shell in its own private mount namespace; answers arrive in the order the commands were sent. */
export class PeerDriver {
  #child: ChildProcessWithoutNullStreams;
  #pending: Pending[] = [];
  #stderr = '';
  #exited: Promise<void>;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    child.stderr.setEncoding('utf8').on('data', (d: string) => (this.#stderr = (this.#stderr + d).slice(-2000)));
    this.#exited = new Promise((resolve) => child.once('close', () => resolve()));
    void this.#exited.then(() => this.#failAll(`driver exited${this.#stderr ? `: ${this.#stderr.trim()}` : ''}`));
  }

  /** Starts a driver whose cwd is `bundle`; `errFile` is its scratch file for runtimes' stderr. */
  static async start(bundle: string, errFile: string): Promise<PeerDriver> {
    const child = spawn(
      'unshare',
      ['--mount', '--propagation', 'private', 'bash', '-c', DRIVER_SCRIPT, 'bench-driver', bundle, errFile],
      // LC_ALL=C: $EPOCHREALTIME uses the locale's decimal separator.
      { env: { ...process.env, LC_ALL: 'C' }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const driver = new PeerDriver(child);
    const lines = createInterface({ input: child.stdout });
    const first = await new Promise<string>((resolve) => {
      lines.once('line', resolve);
      child.once('close', () => resolve(`fatal driver exited: ${driver.#stderr.trim()}`));
      child.once('error', (e) => resolve(`fatal cannot start unshare: ${e.message}`));
    });
    if (first !== 'ready') {
      await driver.close();
      throw new Error(first.replace(/^fatal /, ''));
    }
    lines.on('line', (line) => driver.#pending.shift()?.resolve(parseAnswer(line)));
    return driver;
  }

  /** Runs `<runtime> run -b <bundle> <id>`; resolves when it exited (a failure is a non-zero `exitCode`). */
  run(runtime: string, id: string): Promise<PeerResult> {
    return this.#send('run', runtime, id);
  }

  /** Runs `<runtime> delete -f <id>` inside the namespace (crun cannot even delete on the hybrid host outside). */
  delete(runtime: string, id: string): Promise<PeerResult> {
    return this.#send('delete', runtime, id);
  }

  /** Ends the driver (EOF on its stdin) and waits for it; kills it if it does not exit within `graceMs`. */
  async close(graceMs = 10_000): Promise<void> {
    if (this.#child.pid === undefined) return; // never started (spawn error): there is no 'close' to wait for
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  #send(verb: 'run' | 'delete', runtime: string, id: string): Promise<PeerResult> {
    if (/\s/.test(runtime + id)) throw new Error(`runtime path and id must not contain spaces: "${runtime}" "${id}"`);
    return new Promise<PeerResult>((resolve, reject) => {
      if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
        reject(new Error('driver is not running'));
        return;
      }
      this.#pending.push({ resolve, reject });
      this.#child.stdin.write(`${verb} ${runtime} ${id}\n`);
    });
  }

  #failAll(reason: string): void {
    for (const p of this.#pending.splice(0)) p.reject(new Error(reason));
  }
}
