/**
 * `--format`: the part of Go's text/template that docker users write — `{{json .}}`, `{{.Field}}`,
 * `{{.A.B}}`, `{{json .Config}}`, `{{index .Labels "k"}}`, `{{join .Args " "}}`, `{{upper .Name}}`,
 * `{{lower ...}}`, `{{len ...}}`, `{{truncate .ID 5}}`, pipes (`{{.Name | upper}}`) and the `table` prefix
 * with headers — and docker's tab-aligned tables. No loops or conditions: `range`, `if` and friends are refused
 * with a clear error.
 * @module
 */
import { UsageError } from './args.js';

type Value = unknown;

/** A parsed template. */
export interface Template {
  /** Whether it began with `table` (a header row, aligned columns). */
  table: boolean;
  /** Renders one row (or the whole output for a non-table template). */
  render(data: Value): string;
  /** The header row of a table template, from `headers` (field → title; others are upper-cased). */
  header(headers: Record<string, string>): string;
}

type Node = { text: string } | { expr: string };

function tokenize(source: string): Node[] {
  const out: Node[] = [];
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    if (open < 0) {
      out.push({ text: source.slice(i) });
      break;
    }
    if (open > i) out.push({ text: source.slice(i, open) });
    const close = source.indexOf('}}', open + 2);
    if (close < 0) throw new Error(`unclosed action at position ${open}`);
    let expr = source.slice(open + 2, close);
    // Go's trim markers: {{- and -}}.
    if (expr.startsWith('-')) {
      expr = expr.slice(1);
      const last = out.at(-1);
      if (last && 'text' in last) last.text = last.text.trimEnd();
    }
    let trimNext = false;
    if (expr.endsWith('-')) {
      expr = expr.slice(0, -1);
      trimNext = true;
    }
    out.push({ expr: expr.trim() });
    i = close + 2;
    if (trimNext) while (i < source.length && /\s/.test(source[i]!)) i++;
  }
  return out;
}

/** Splits an action into pipeline stages of words, keeping quoted strings together (as JSON strings). */
function stages(expr: string): string[][] {
  const out: string[][] = [[]];
  for (const m of expr.matchAll(/"(?:[^"\\]|\\.)*"|`[^`]*`|\||[^\s|"`]+/g)) {
    const t = m[0];
    if (t === '|') out.push([]);
    else if (t.startsWith('`')) out.at(-1)!.push(JSON.stringify(t.slice(1, -1)));
    else out.at(-1)!.push(t.startsWith('"') ? JSON.stringify(JSON.parse(t)) : t);
  }
  return out;
}

/**
 * `.A.B`: a missing field of the top-level object is an error (docker's rows are Go structs); deeper down a
 * missing key gives `<no value>`, as a Go map does (labels, attributes). Nothing can be looked up in a
 * string or a number.
 */
function field(data: Value, path: string): Value {
  if (path === '.') return data;
  let v: Value = data;
  const parts = path.split('.').slice(1);
  for (const [i, part] of parts.entries()) {
    if (v === null || v === undefined || typeof v !== 'object') throw new Error(`can't evaluate field ${part}`);
    if (!(part in (v as object))) {
      if (i === 0) throw new Error(`can't evaluate field ${part}`);
      return undefined;
    }
    v = (v as Record<string, Value>)[part];
  }
  return v;
}

function operand(word: string, data: Value): Value {
  if (word.startsWith('"')) return JSON.parse(word) as string;
  if (/^-?\d+$/.test(word)) return Number(word);
  if (word === 'true' || word === 'false') return word === 'true';
  if (word.startsWith('.')) return field(data, word);
  throw new Error(`function "${word}" not defined`);
}

/** Go's default printing of a value ({{.X}}): maps and slices the way fmt prints them. */
export function goString(v: Value): string {
  if (v === null || v === undefined) return '<no value>';
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, Value>).sort(([a], [b]) => a.localeCompare(b));
    return `map[${entries.map(([k, x]) => `${k}:${goString(x)}`).join(' ')}]`;
  }
  return String(v);
}

const FUNCTIONS: Record<string, (...args: Value[]) => Value> = {
  json: (v) => JSON.stringify(v ?? null),
  upper: (v) => String(v).toUpperCase(),
  lower: (v) => String(v).toLowerCase(),
  title: (v) => String(v).replace(/\b\w/g, (c) => c.toUpperCase()),
  len: (v) => (Array.isArray(v) || typeof v === 'string' ? v.length : typeof v === 'object' && v ? Object.keys(v).length : 0),
  join: (v, sep) => (Array.isArray(v) ? v.map(String).join(String(sep)) : String(v)),
  index: (v, key) => {
    if (v === null || typeof v !== 'object') throw new Error('index of a non-map');
    return (v as Record<string, Value>)[String(key)] ?? (Array.isArray(v) ? undefined : '');
  },
  truncate: (v, n) => String(v).slice(0, Number(n)),
  println: (...vs) => `${vs.map(goString).join(' ')}\n`,
};

const UNSUPPORTED = new Set(['range', 'if', 'else', 'end', 'with', 'define', 'template', 'block']);

function evaluate(expr: string, data: Value): Value {
  let value: Value = undefined;
  let first = true;
  for (const w of stages(expr)) {
    if (w.length === 0) throw new Error('empty command');
    const [head, ...rest] = w;
    if (UNSUPPORTED.has(head!)) throw new Error(`"${head}" is not supported by berth's --format (only fields and functions)`);
    const fn = FUNCTIONS[head!];
    const args = rest.map((x) => operand(x, data));
    if (!first) args.push(value);
    if (fn) value = fn(...args);
    else if (rest.length === 0 && first) value = operand(head!, data);
    else throw new Error(`function "${head}" not defined`);
    first = false;
  }
  return value;
}

/**
 * Parses a `--format` value for `command` (named in errors). `table` alone means the command's default columns,
 * which the caller passes as `defaultTable`.
 */
export function parseTemplate(source: string, command: string, defaultTable?: string): Template {
  let table = false;
  let body = source;
  if (/^table(\s|$)/.test(source)) {
    table = true;
    body = source.slice(5).trim() || defaultTable || '';
  }
  // Docker's formats take escaped tabs and newlines literally typed on a command line.
  body = body.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  let nodes: Node[];
  try {
    nodes = tokenize(body);
  } catch (e) {
    throw new UsageError(command, `template parsing error: ${(e as Error).message}`);
  }
  const render = (data: Value): string =>
    nodes
      .map((n) => {
        if ('text' in n) return n.text;
        try {
          const v = evaluate(n.expr, data);
          return typeof v === 'string' ? v : goString(v);
        } catch (e) {
          throw new UsageError(command, `template: executing "{{${n.expr}}}": ${(e as Error).message}`);
        }
      })
      .join('');
  return {
    table,
    render,
    header(headers) {
      return nodes
        .map((n) => {
          if ('text' in n) return n.text;
          const m = /^\.(\w+)$/.exec(n.expr.split('|')[0]!.trim());
          const name = m?.[1] ?? n.expr;
          return headers[name] ?? name.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase();
        })
        .join('');
    },
  };
}

/**
 * Aligns tab-separated rows as docker does (Go's tabwriter: cells padded to the widest in their column plus 3
 * spaces, at least 10 wide; the last cell of a row unpadded).
 */
export function alignTable(lines: readonly string[]): string {
  const rows = lines.map((l) => l.split('\t'));
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => { if (i < r.length - 1) widths[i] = Math.max(widths[i] ?? 0, [...c].length); });
  return rows
    .map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(Math.max((widths[i] ?? 0) + 3, 10)) : c)).join('').trimEnd())
    .map((l) => `${l}\n`)
    .join('');
}

/**
 * Prints `rows` per `--format` (or the default table): `table ...` aligned with a header; any other template one
 * line per row; `json` (Docker's shorthand) as `{{json .}}`.
 */
export function formatRows(
  rows: readonly Value[],
  format: string | undefined,
  command: string,
  defaults: { table: string; headers: Record<string, string> },
): string {
  const source = format === undefined || format === '' || format === 'table' ? `table ${defaults.table}` : format === 'json' ? '{{json .}}' : format;
  const t = parseTemplate(source, command, defaults.table);
  if (!t.table) return rows.map((r) => `${t.render(r)}\n`).join('');
  return alignTable([t.header(defaults.headers), ...rows.map((r) => t.render(r))]);
}
