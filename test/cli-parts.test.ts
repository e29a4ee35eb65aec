// The CLI's pieces on their own: flag parsing as pflag does it, the --format template subset, docker's flag
// syntaxes (-p, -v, --tmpfs, --mount), and docker's human-readable text.
import { describe, expect, it } from 'vitest';
import { parseArgs, UsageError, type FlagSpec } from '../lib/cli/args.js';
import { parseMount, parsePublish, parseTmpfs, parseVolume } from '../lib/cli/container-flags.js';
import { alignTable, formatRows, parseTemplate } from '../lib/cli/format.js';
import { commandText, humanDuration, humanSize, statusText } from '../lib/cli/human.js';
import { progressBar, PullProgress } from '../lib/cli/progress.js';
import { DetachKeyFilter, parseDetachKeys } from '../lib/cli/terminal-session.js';

const flags: FlagSpec[] = [
  { long: 'detach', short: 'd', type: 'bool', help: '' },
  { long: 'interactive', short: 'i', type: 'bool', help: '' },
  { long: 'env', short: 'e', type: 'list', help: '' },
  { long: 'publish', short: 'p', type: 'list', help: '' },
  { long: 'name', type: 'string', help: '' },
];

describe('flags', () => {
  it('parses docker\'s forms: grouped shorts, attached values, =, repeated lists, --', () => {
    const r = parseArgs(['-di', '-p8080:80', '-e=A=1', '--env', 'B=2', '--name=web', '--detach=false', 'img', 'x'], flags, 'berth run');
    expect(Object.fromEntries(r.flags)).toEqual({ detach: false, interactive: true, publish: ['8080:80'], env: ['A=1', 'B=2'], name: 'web' });
    expect(r.args).toEqual(['img', 'x']);
    expect(parseArgs(['--', '-d'], flags, 'x').args).toEqual(['-d']);
  });

  it('stops at the first argument when flags may not follow (run): the program\'s flags stay its own', () => {
    expect(parseArgs(['-d', 'busybox', 'ls', '-d', '--name', 'x'], flags, 'berth run', false).args).toEqual(['busybox', 'ls', '-d', '--name', 'x']);
    expect(parseArgs(['a', '-d'], flags, 'berth rm').flags.get('detach')).toBe(true);
  });

  it('reports unknown flags and missing values as pflag words them', () => {
    expect(() => parseArgs(['--nope'], flags, 'c')).toThrow(new UsageError('c', 'unknown flag: --nope'));
    expect(() => parseArgs(['-x'], flags, 'c')).toThrow("unknown shorthand flag: 'x' in -x");
    expect(() => parseArgs(['--name'], flags, 'c')).toThrow('flag needs an argument: --name');
    expect(() => parseArgs(['-e'], flags, 'c')).toThrow("flag needs an argument: 'e' in -e");
    expect(() => parseArgs(['--detach=maybe'], flags, 'c')).toThrow('invalid argument "maybe" for "--detach" flag');
    expect(parseArgs(['--help'], flags, 'c').help).toBe(true);
  });
});

describe('--format', () => {
  const row = { ID: 'abc', Names: 'web', Labels: { team: 'a' }, Args: ['x', 'y'], Config: { Env: ['A=1'] }, N: 3 };
  it('renders fields, functions, pipes and trimming', () => {
    const t = (s: string) => parseTemplate(s, 'c').render(row);
    expect(t('{{.ID}}:{{.Names}}')).toBe('abc:web');
    expect(t('{{json .Config}}')).toBe('{"Env":["A=1"]}');
    expect(t('{{index .Labels "team"}} {{.Labels.team}} {{.Labels.none}}')).toBe('a a <no value>');
    expect(t('{{join .Args ","}} {{len .Args}} {{upper .Names}} {{.Names | upper}} {{truncate .ID 2}}')).toBe('x,y 2 WEB WEB ab');
    expect(t('{{.Args}} {{.Labels}} {{.N}}')).toBe('[x y] map[team:a] 3');
    expect(t('a {{- .ID -}} b')).toBe('aabcb');
    expect(t('{{json .}}')).toBe(JSON.stringify(row));
  });

  it('runs Go\'s control structures, variables, comparisons and printf', () => {
    const t = (s: string, data: unknown = row) => parseTemplate(s, 'c').render(data);
    expect(t('{{range .Args}}[{{.}}]{{end}}')).toBe('[x][y]');
    expect(t('{{range $i, $a := .Args}}{{$i}}={{$a}} {{end}}')).toBe('0=x 1=y ');
    expect(t('{{range $k, $v := .Labels}}{{$k}}:{{$v}}{{end}}')).toBe('team:a');
    expect(t('{{range .Missing}}x{{else}}none{{end}}', { Missing: [] })).toBe('none');
    // docker inspect's most common idiom: every network's address.
    const inspect = { NetworkSettings: { Networks: { b: { IPAddress: '10.0.0.3' }, a: { IPAddress: '10.0.0.2' } } } };
    expect(t('{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}', inspect)).toBe('10.0.0.2 10.0.0.3 ');
    expect(t('{{if eq .Names "web"}}yes{{else}}no{{end}}')).toBe('yes');
    expect(t('{{if gt .N 5}}big{{else if gt .N 2}}mid{{else}}small{{end}}')).toBe('mid');
    expect(t('{{if and .Args (not .Missing)}}ok{{end}}', { Args: [1], Missing: '' })).toBe('ok');
    expect(t('{{with .Config}}{{index .Env 0}}{{end}}{{with .Labels.none}}x{{else}}-{{end}}')).toBe('A=1-');
    expect(t('{{$n := .Names}}{{range .Args}}{{$n}}/{{.}} {{end}}{{$.ID}}')).toBe('web/x web/y abc');
    expect(t('{{printf "%-5s|%3d|%q" .Names .N .ID}}')).toBe('web  |  3|"abc"');
    expect(t('{{len (index .Config "Env")}} {{/* a comment */}}{{.N | printf "%d!"}}')).toBe('1 3!');
    expect(t('{{range .Args -}} {{.}} {{- end}}')).toBe('xy');
  });

  it('refuses what it does not implement, and missing fields', () => {
    expect(() => parseTemplate('{{define "x"}}{{end}}', 'c')).toThrow(/"define" is not supported/);
    expect(() => parseTemplate('{{range .Args}}{{.}}', 'c')).toThrow(/has no \{\{end\}\}/);
    expect(() => parseTemplate('{{end}}', 'c')).toThrow(/unexpected \{\{end\}\}/);
    expect(() => parseTemplate('{{range .Names}}{{end}}', 'c').render(row)).toThrow(/range can't iterate over web/);
    expect(() => parseTemplate('{{$nope}}', 'c').render(row)).toThrow(/undefined variable "\$nope"/);
    expect(() => parseTemplate('{{.Nope}}', 'c').render(row)).toThrow(/can't evaluate field Nope/);
    expect(() => parseTemplate('{{.ID', 'c')).toThrow(/template parsing error/);
  });

  it('aligns tables as docker\'s tabwriter does and names the columns', () => {
    const out = formatRows([{ ID: 'abc', Names: 'a-long-name' }, { ID: 'defghijklmnop', Names: 'b' }], 'table {{.ID}}\t{{.Names}}', 'c', { table: '', headers: { ID: 'CONTAINER ID', Names: 'NAMES' } });
    expect(out).toBe('CONTAINER ID    NAMES\nabc             a-long-name\ndefghijklmnop   b\n');
    expect(alignTable(['a\tb'])).toBe('a         b\n');
  });
});

describe('docker flag syntaxes', () => {
  it('-p', () => {
    expect(parsePublish('80', 'c')).toEqual({ container: 80, protocol: 'tcp' });
    expect(parsePublish('8080:80/udp', 'c')).toEqual({ container: 80, host: 8080, protocol: 'udp' });
    expect(parsePublish('127.0.0.1::80', 'c')).toEqual({ container: 80, hostIp: '127.0.0.1', protocol: 'tcp' });
    expect(parsePublish('127.0.0.1:9000:80', 'c')).toEqual({ container: 80, host: 9000, hostIp: '127.0.0.1', protocol: 'tcp' });
    expect(() => parsePublish('8000-8010:80', 'c')).toThrow(/ranges are not supported/);
    expect(() => parsePublish('80/sctp', 'c')).toThrow(/tcp or udp/);
  });

  it('-v, --tmpfs, --mount', () => {
    expect(parseVolume('/a:/b:ro,rshared', 'c')).toEqual({ type: 'bind', source: '/a', target: '/b', readonly: true, propagation: 'rshared' });
    expect(() => parseVolume('vol:/b', 'c')).toThrow(/named volumes/);
    expect(() => parseVolume('/b', 'c')).toThrow(/anonymous volumes/);
    expect(parseTmpfs('/t:size=64m,mode=1770,noexec', 'c')).toEqual({ type: 'tmpfs', target: '/t', size: '64m', mode: 0o1770, options: ['noexec'] });
    expect(parseMount('type=tmpfs,destination=/t,tmpfs-size=1024,tmpfs-mode=700', 'c')).toEqual({ type: 'tmpfs', target: '/t', size: 1024, mode: 0o700 });
    expect(parseMount('type=bind,src=/tmp,dst=/x,ro=true', 'c')).toEqual({ type: 'bind', source: '/tmp', target: '/x', readonly: true });
    expect(() => parseMount('type=volume,target=/x', 'c')).toThrow(/not supported yet/);
  });
});

describe('docker\'s text', () => {
  it('sizes, durations, status and command columns', () => {
    expect([0, 999, 1000, 4260, 1_234_567, 2e9].map(humanSize)).toEqual(['0B', '999B', '1kB', '4.26kB', '1.235MB', '2GB']);
    expect([500, 1000, 5000, 60_000, 120_000, 3_600_000, 5 * 3_600_000, 3 * 86_400_000].map(humanDuration))
      .toEqual(['Less than a second', '1 second', '5 seconds', 'About a minute', '2 minutes', 'About an hour', '5 hours', '3 days']);
    const now = Date.parse('2024-01-01T00:01:00Z');
    expect(statusText({ status: 'running', paused: true, startedAt: '2024-01-01T00:00:30Z', finishedAt: null, exitCode: null }, now)).toBe('Up 30 seconds (Paused)');
    expect(statusText({ status: 'exited', paused: false, startedAt: null, finishedAt: '2024-01-01T00:00:55Z', exitCode: 3 }, now)).toBe('Exited (3) 5 seconds ago');
    expect(commandText(['sh', '-c', 'while true; do sleep 1; done'], false)).toBe('"sh -c while true; d…"');
  });

  it('progress bars and plain pull lines', () => {
    expect(progressBar(0, 100)).toBe(`[${' '.repeat(50)}]       0B/100B`);
    expect(progressBar(50, 100)).toBe(`[${'='.repeat(24)}>${' '.repeat(25)}]      50B/100B`);
    expect(progressBar(100, 100)).toBe(`[${'='.repeat(50)}]     100B/100B`);
    const out: string[] = [];
    const p = new PullProgress({ write: (s: string) => out.push(s) } as never, false);
    const digest = `sha256:${'ab'.repeat(32)}`;
    p.event({ type: 'resolved', reference: 'r', digest, platform: 'linux/amd64', layers: [{ digest, size: 10 }] });
    p.event({ type: 'blob', digest, kind: 'layer', status: 'downloading', current: 5, total: 10 });
    p.event({ type: 'extract', digest, status: 'done', current: 10, total: 10 });
    p.event({ type: 'blob', digest, kind: 'layer', status: 'done', current: 10, total: 10 });
    // Off a terminal no bars; "Pull complete" waits for the download even when unpacking finished first.
    expect(out.join('')).toBe(['Pulling fs layer', 'Verifying Checksum', 'Download complete', 'Pull complete'].map((s) => `abababababab: ${s}\n`).join(''));
    expect(p.downloaded).toBe(true);
  });
});

describe('detach keys', () => {
  const run = async (keys: string, chunks: string[]) => {
    let detached = 0;
    const f = new DetachKeyFilter(parseDetachKeys(keys, 'c'), () => detached++);
    const out: Buffer[] = [];
    f.on('data', (d: Buffer) => out.push(d));
    for (const c of chunks) f.write(Buffer.from(c, 'latin1'));
    f.end();
    await new Promise((r) => f.once('end', r));
    return { out: Buffer.concat(out).toString('latin1'), detached };
  };

  it('parses docker\'s syntax', () => {
    expect([...parseDetachKeys('ctrl-p,ctrl-q', 'c')]).toEqual([16, 17]);
    expect([...parseDetachKeys('ctrl-@,ctrl-[,a', 'c')]).toEqual([0, 27, 97]);
    expect(parseDetachKeys('', 'c').length).toBe(0);
    expect(() => parseDetachKeys('ctrl-1', 'c')).toThrow(/invalid detach keys "ctrl-1"/);
    expect(() => parseDetachKeys('alt-x', 'c')).toThrow(UsageError);
  });

  it('detaches on the sequence, even split across reads, and passes everything else on unchanged', async () => {
    expect(await run('ctrl-p,ctrl-q', ['ab\x10', '\x11cd'])).toEqual({ out: 'ab', detached: 1 });
    // A lone ctrl-p, or ctrl-p followed by something else, is typed as it is (emacs users need it).
    expect(await run('ctrl-p,ctrl-q', ['a\x10b', '\x10\x10\x11'])).toEqual({ out: 'a\x10b\x10', detached: 1 });
    expect(await run('ctrl-p,ctrl-q', ['x\x10'])).toEqual({ out: 'x', detached: 0 }); // held at the end of input, not sent
    expect(await run('', ['\x10\x11'])).toEqual({ out: '\x10\x11', detached: 0 });
  });
});
