/**
 * `--format`: the part of Go's text/template that docker users write — `{{json .}}`, `{{.Field}}`,
 * `{{.A.B}}`, `{{json .Config}}`, `{{index .Labels "k"}}`, `{{join .Args " "}}`, `{{upper .Name}}`,
 * `{{lower ...}}`, `{{len ...}}`, `{{truncate .ID 5}}`, `{{printf "%-10s" .Name}}`, pipes (`{{.Name | upper}}`),
 * parentheses, variables (`$`, `{{$n := .Name}}`), comparisons (`eq ne lt le gt ge`, `and or not`), the control
 * structures `if`/`else if`/`else`, `range` (lists and maps, `{{range $k, $v := .Labels}}`, `else`) and `with`,
 * comments, and the `table` prefix with headers — and docker's tab-aligned tables. `define`/`template`/`block`
 * are refused with a clear error.
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

/** A lexical piece: literal text, or the inside of an action (`{{...}}`), trimmed. */
type Token = { text: string } | { expr: string };

function tokenize(source: string): Token[] {
  const out: Token[] = [];
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
    if (/^-\s/.test(expr) || expr === '-') {
      expr = expr.slice(1);
      const last = out.at(-1);
      if (last && 'text' in last) last.text = last.text.trimEnd();
    }
    let trimNext = false;
    if (/\s-$/.test(expr)) {
      expr = expr.slice(0, -1);
      trimNext = true;
    }
    out.push({ expr: expr.trim() });
    i = close + 2;
    if (trimNext) while (i < source.length && /\s/.test(source[i]!)) i++;
  }
  return out;
}

/**
 * The parsed template: text, actions that print a pipeline, and Go's control structures — `if`/`else if`/`else`,
 * `range` (over lists and maps, with `$i, $v :=`, and `else` for an empty one), `with`.
 */
type Node =
  | { kind: 'text'; text: string }
  | { kind: 'print'; expr: string }
  | { kind: 'if'; expr: string; then: Node[]; else: Node[] }
  | { kind: 'with'; expr: string; then: Node[]; else: Node[] }
  | { kind: 'range'; expr: string; vars: string[]; body: Node[]; else: Node[] };

const UNSUPPORTED = new Set(['define', 'template', 'block', 'break', 'continue']);

/** Builds the tree; each list ends at `{{end}}`, `{{else}}` or the end of the template (top level only). */
function parseNodes(tokens: Token[]): Node[] {
  let pos = 0;
  const keyword = (expr: string) => /^(\w+)\b\s*(.*)$/s.exec(expr) ?? [expr, expr, ''];
  const list = (top: boolean): { nodes: Node[]; end: 'end' | 'else' | 'eof'; elseExpr?: string } => {
    const nodes: Node[] = [];
    while (pos < tokens.length) {
      const t = tokens[pos++]!;
      if ('text' in t) {
        nodes.push({ kind: 'text', text: t.text });
        continue;
      }
      if (t.expr.startsWith('/*')) continue; // a comment
      const [, word, rest] = keyword(t.expr);
      if (UNSUPPORTED.has(word!)) throw new Error(`"${word}" is not supported by berth's --format`);
      if (word === 'end') {
        if (top) throw new Error('unexpected {{end}}');
        return { nodes, end: 'end' };
      }
      if (word === 'else') {
        if (top) throw new Error('unexpected {{else}}');
        return { nodes, end: 'else', elseExpr: rest! };
      }
      if (word === 'if' || word === 'with' || word === 'range') nodes.push(block(word, rest!));
      else nodes.push({ kind: 'print', expr: t.expr });
    }
    if (!top) throw new Error('unexpected EOF: an {{if}}, {{range}} or {{with}} has no {{end}}');
    return { nodes, end: 'eof' };
  };
  const block = (word: 'if' | 'with' | 'range', expr: string): Node => {
    if (!expr) throw new Error(`missing value for ${word}`);
    const body = list(false);
    let otherwise: Node[] = [];
    if (body.end === 'else') {
      // `{{else if x}}` nests another if (`else with` likewise), sharing this block's {{end}}.
      const chained = /^(if|with)\b\s*(.*)$/s.exec(body.elseExpr ?? '');
      if (chained) otherwise = [block(chained[1] as 'if' | 'with', chained[2]!)];
      else {
        const rest = list(false);
        if (rest.end !== 'end') throw new Error(`{{else}} after {{else}} in ${word}`);
        otherwise = rest.nodes;
      }
    }
    if (word === 'range') {
      const m = /^(\$\w*)(?:\s*,\s*(\$\w*))?\s*:?=\s*(.*)$/s.exec(expr);
      return { kind: 'range', expr: m ? m[3]! : expr, vars: m ? [m[1]!, ...(m[2] ? [m[2]] : [])] : [], body: body.nodes, else: otherwise };
    }
    return word === 'if' ? { kind: 'if', expr, then: body.nodes, else: otherwise } : { kind: 'with', expr, then: body.nodes, else: otherwise };
  };
  return list(true).nodes;
}

/** Splits an action into pipeline stages of words, keeping quoted strings together (as JSON strings). */
function stages(expr: string): string[][] {
  const out: string[][] = [[]];
  for (const m of expr.matchAll(/"(?:[^"\\]|\\.)*"|`[^`]*`|\||\(|\)|[^\s|"`()]+/g)) {
    const t = m[0];
    if (t === '|') out.push([]);
    else if (t.startsWith('`')) out.at(-1)!.push(JSON.stringify(t.slice(1, -1)));
    else out.at(-1)!.push(t.startsWith('"') ? JSON.stringify(JSON.parse(t)) : t);
  }
  return out;
}

/** What an action sees: `.` (the current value), `$` (the template's data) and `$name` variables. */
interface Scope {
  dot: Value;
  vars: Map<string, Value>;
}

/**
 * `.A.B`: a missing field of the top-level object is an error (docker's rows are Go structs); deeper down a
 * missing key gives `<no value>`, as a Go map does (labels, attributes). Nothing can be looked up in a
 * string or a number.
 */
function field(data: Value, path: string, strict: boolean): Value {
  if (path === '.' || path === '') return data;
  let v: Value = data;
  const parts = path.split('.').filter(Boolean);
  for (const [i, part] of parts.entries()) {
    if (v === null || v === undefined || typeof v !== 'object') throw new Error(`can't evaluate field ${part}`);
    if (!(part in (v as object))) {
      if (i === 0 && strict) throw new Error(`can't evaluate field ${part}`);
      return undefined;
    }
    v = (v as Record<string, Value>)[part];
  }
  return v;
}

function operand(word: string, scope: Scope, root: Value): Value {
  if (word.startsWith('"')) return JSON.parse(word) as string;
  if (/^-?\d+(\.\d+)?$/.test(word)) return Number(word);
  if (word === 'true' || word === 'false') return word === 'true';
  if (word === 'nil') return null;
  if (word.startsWith('.')) return field(scope.dot, word, scope.dot === root);
  if (word.startsWith('$')) {
    const [name, ...path] = word.split('.');
    if (!scope.vars.has(name!)) throw new Error(`undefined variable "${name}"`);
    const base = scope.vars.get(name!);
    return path.length ? field(base, `.${path.join('.')}`, false) : base;
  }
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

/** Go's truth: false, 0, nil, and empty strings, lists and maps are false. */
function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** A small `printf`: %s %v %d %q %% (with an optional width), enough for column layouts. */
function printf(format: Value, ...args: Value[]): string {
  let i = 0;
  return String(format).replace(/%(-?\d*)([svdq%])/g, (_m, width: string, verb: string) => {
    if (verb === '%') return '%';
    const a = args[i++];
    const text = verb === 'q' ? JSON.stringify(typeof a === 'string' ? a : goString(a)) : verb === 'd' ? String(Math.trunc(Number(a))) : typeof a === 'string' ? a : goString(a);
    const w = Number(width);
    return !width ? text : w < 0 ? text.padEnd(-w) : text.padStart(w);
  });
}

const compare = (a: Value, b: Value) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b)));

const FUNCTIONS: Record<string, (...args: Value[]) => Value> = {
  json: (v) => JSON.stringify(v ?? null),
  upper: (v) => String(v).toUpperCase(),
  lower: (v) => String(v).toLowerCase(),
  title: (v) => String(v).replace(/\b\w/g, (c) => c.toUpperCase()),
  len: (v) => (Array.isArray(v) || typeof v === 'string' ? v.length : typeof v === 'object' && v ? Object.keys(v).length : 0),
  join: (v, sep) => (Array.isArray(v) ? v.map(String).join(String(sep)) : String(v)),
  split: (v, sep) => String(v).split(String(sep)),
  index: (v, ...keys) => {
    let out = v;
    for (const key of keys) {
      if (out === null || typeof out !== 'object') throw new Error('index of a non-map');
      out = (out as Record<string, Value>)[String(key)] ?? (Array.isArray(out) ? undefined : '');
    }
    return out;
  },
  truncate: (v, n) => String(v).slice(0, Number(n)),
  println: (...vs) => `${vs.map((x) => (typeof x === 'string' ? x : goString(x))).join(' ')}\n`,
  print: (...vs) => vs.map((x) => (typeof x === 'string' ? x : goString(x))).join(''),
  printf: (f, ...vs) => printf(f, ...vs),
  eq: (a, ...bs) => bs.some((b) => a === b || (a !== null && b !== null && typeof a !== 'object' && String(a) === String(b) && typeof a === typeof b)),
  ne: (a, b) => a !== b,
  lt: (a, b) => compare(a, b) < 0,
  le: (a, b) => compare(a, b) <= 0,
  gt: (a, b) => compare(a, b) > 0,
  ge: (a, b) => compare(a, b) >= 0,
  not: (v) => !truthy(v),
  and: (...vs) => vs.find((v) => !truthy(v)) ?? vs.at(-1),
  or: (...vs) => vs.find((v) => truthy(v)) ?? vs.at(-1),
};

/** Evaluates the words of one command, parenthesised sub-pipelines included. */
function command(words: string[], scope: Scope, root: Value, piped: { value: Value } | undefined): Value {
  // Parentheses: evaluate innermost groups first into placeholder values.
  const values: Value[] = [];
  const flat: (string | { v: number })[] = [];
  for (let i = 0; i < words.length; i++) {
    if (words[i] !== '(') {
      if (words[i] === ')') throw new Error('unexpected ")"');
      flat.push(words[i]!);
      continue;
    }
    let depth = 1;
    let j = i + 1;
    for (; j < words.length && depth > 0; j++) depth += words[j] === '(' ? 1 : words[j] === ')' ? -1 : 0;
    if (depth !== 0) throw new Error('unclosed "("');
    values.push(pipeline(words.slice(i + 1, j - 1).join(' '), scope, root));
    flat.push({ v: values.length - 1 });
    i = j - 1;
  }
  const arg = (w: string | { v: number }) => (typeof w === 'string' ? operand(w, scope, root) : values[w.v]);
  const [head, ...rest] = flat;
  if (head === undefined) throw new Error('empty command');
  const args = rest.map(arg);
  if (piped) args.push(piped.value);
  if (typeof head === 'string' && FUNCTIONS[head]) return FUNCTIONS[head](...args);
  if (rest.length === 0 && !piped) return arg(head);
  throw new Error(`function "${typeof head === 'string' ? head : '(...)'}" not defined`);
}

/** Evaluates a pipeline (`.Name | upper`), or declares a variable (`$x := .Name`, printing nothing). */
function pipeline(expr: string, scope: Scope, root: Value): Value {
  const decl = /^(\$\w+)\s*:?=\s*(.*)$/s.exec(expr);
  if (decl) {
    scope.vars.set(decl[1]!, pipeline(decl[2]!, scope, root));
    return '';
  }
  let piped: { value: Value } | undefined;
  for (const words of stages(expr)) piped = { value: command(words, scope, root, piped) };
  return piped?.value;
}

function renderNodes(nodes: Node[], scope: Scope, root: Value): string {
  let out = '';
  for (const n of nodes) {
    try {
      if (n.kind === 'text') out += n.text;
      else if (n.kind === 'print') {
        const v = pipeline(n.expr, scope, root);
        if (!/^\$\w+\s*:?=/.test(n.expr)) out += typeof v === 'string' ? v : goString(v);
      } else if (n.kind === 'if') {
        out += renderNodes(truthy(pipeline(n.expr, scope, root)) ? n.then : n.else, scope, root);
      } else if (n.kind === 'with') {
        const v = pipeline(n.expr, scope, root);
        out += truthy(v) ? renderNodes(n.then, { dot: v, vars: scope.vars }, root) : renderNodes(n.else, scope, root);
      } else {
        const v = pipeline(n.expr, scope, root);
        const items: [Value, Value][] = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v !== null && typeof v === 'object'
            ? Object.entries(v as Record<string, Value>).sort(([a], [b]) => a.localeCompare(b))
            : typeof v === 'number' ? Array.from({ length: v }, (_x, i) => [i, i]) : [];
        if (v !== null && v !== undefined && typeof v !== 'object' && typeof v !== 'number') throw new Error(`range can't iterate over ${goString(v)}`);
        if (items.length === 0) out += renderNodes(n.else, scope, root);
        for (const [k, x] of items) {
          const vars = new Map(scope.vars);
          if (n.vars.length === 1) vars.set(n.vars[0]!, x);
          else if (n.vars.length === 2) {
            vars.set(n.vars[0]!, k);
            vars.set(n.vars[1]!, x);
          }
          out += renderNodes(n.body, { dot: x, vars }, root);
        }
      }
    } catch (e) {
      if (e instanceof TemplateError) throw e;
      throw new TemplateError(`executing "{{${'expr' in n ? n.expr : ''}}}": ${(e as Error).message}`);
    }
  }
  return out;
}

/** A failure while rendering, already naming the action. */
class TemplateError extends Error {}

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
  let tokens: Token[];
  let nodes: Node[];
  try {
    tokens = tokenize(body);
    nodes = parseNodes(tokens);
  } catch (e) {
    throw new UsageError(command, `template parsing error: ${(e as Error).message}`);
  }
  const render = (data: Value): string => {
    try {
      return renderNodes(nodes, { dot: data, vars: new Map([['$', data]]) }, data);
    } catch (e) {
      throw new UsageError(command, `template: ${(e as Error).message}`);
    }
  };
  return {
    table,
    render,
    header(headers) {
      return tokens
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
