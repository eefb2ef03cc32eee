// Building the page: elements from data with textContent only (never HTML from
// strings, so an object's name can never become markup), and the small formats every
// view shares.

const SVG_NS = 'http://www.w3.org/2000/svg';

function set(el, props) {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (typeof value === 'boolean' || (key === 'value' && 'value' in el)) {
      el[key] = value;
    } else el.setAttribute(key, String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// An HTML element: h('a', {href: '#/x', class: 'y'}, 'text', otherNode).
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  set(el, props);
  append(el, children);
  return el;
}

// An SVG element.
export function s(tag, props, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  set(el, props);
  append(el, children);
  return el;
}

// A table: `head` the column titles, `rows` arrays of cells (strings or nodes), or
// `empty` (a sentence) when there are none.
export function table(head, rows, { empty = 'none', rowProps } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'table',
    { class: 'grid' },
    h('thead', null, h('tr', null, head.map((title) => h('th', null, title)))),
    h(
      'tbody',
      null,
      rows.map((cells, i) => h('tr', rowProps?.(i) ?? null, cells.map((c) => h('td', null, c)))),
    ),
  );
}

// A definition list of [term, value] pairs, skipping empty values.
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs
      .filter(([, value]) => value !== null && value !== undefined && value !== '')
      .map(([term, value]) => [h('dt', null, term), h('dd', null, value)]),
  );
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', null, title), children);
}

export function badge(text, tone = 'neutral', title) {
  return h('span', { class: `badge ${tone}`, title }, text);
}

export function link(href, text) {
  return h('a', { href }, text);
}

// A Kubernetes-style condition status as a coloured badge.
export function conditionStatus(status) {
  const tone = { True: 'good', False: 'bad' }[status] ?? 'neutral';
  return badge(status ?? 'Unknown', tone);
}

// Conditions as a table; `scope` (e.g. the parent a route condition is about) first
// when given.
export function conditions(list, { empty = 'no conditions reported' } = {}) {
  const scoped = list.some((c) => c.scope);
  const head = scoped
    ? ['For', 'Type', 'Status', 'Reason', 'Message']
    : ['Type', 'Status', 'Reason', 'Message'];
  return h(
    'div',
    { class: 'conditions' },
    table(
      head,
      list.map((c) => {
        const cells = [
          h('strong', null, c.type ?? '?'),
          conditionStatus(c.status),
          c.reason ?? '',
          h('span', { class: 'message' }, c.message ?? ''),
        ];
        return scoped ? [c.scope ?? '', ...cells] : cells;
      }),
      { empty },
    ),
  );
}

// Every condition of an object's status: its own, its route parents' and its policy
// ancestors' (Gateway API shapes), each with what it is about.
export function conditionsOf(object) {
  const status = object?.status ?? {};
  const refName = (ref) =>
    ref ? `${ref.kind ?? 'Service'} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name ?? ''}${ref.port ? `:${ref.port}` : ''}` : '';
  const out = (status.conditions ?? []).map((c) => ({ ...c }));
  for (const parent of status.parents ?? []) {
    for (const c of parent.conditions ?? []) out.push({ ...c, scope: refName(parent.parentRef) });
  }
  for (const ancestor of status.ancestors ?? []) {
    for (const c of ancestor.conditions ?? []) out.push({ ...c, scope: refName(ancestor.ancestorRef) });
  }
  return out;
}

// The worst of some conditions as one badge: OK, a problem, or none.
export function health(list) {
  if (!list.length) return badge('—', 'neutral', 'no conditions reported');
  const bad = list.filter((c) => c.status === 'False');
  if (bad.length) return badge(`${bad.length} False`, 'bad', bad.map((c) => `${c.type}: ${c.message}`).join('\n'));
  return badge('OK', 'good', list.map((c) => `${c.type}: ${c.reason}`).join('\n'));
}

// A collapsible raw JSON view of an object.
export function raw(object, title = 'Raw object (JSON)') {
  return h('details', { class: 'raw' }, h('summary', null, title), h('pre', null, JSON.stringify(object, null, 2)));
}

export function labels(map) {
  const entries = Object.entries(map ?? {});
  if (!entries.length) return h('span', { class: 'muted' }, 'none');
  return h('span', { class: 'labels' }, entries.map(([k, v]) => badge(`${k}=${v}`, 'label')));
}

export function errorBox(error) {
  return h('div', { class: 'error', role: 'alert' }, String(error));
}

export function notice(text) {
  return h('div', { class: 'notice' }, text);
}

// Numbers.
export function rps(value) {
  if (value === null || value === undefined) return '—';
  return `${value < 10 ? value.toFixed(2) : value.toFixed(1)} rps`;
}

// The success rate of a stats row, from its counts (or its rate when it has none).
export function successRate(row) {
  if (row?.requests > 0 && typeof row.successes === 'number') return row.successes / row.requests;
  if (typeof row?.success_rate === 'number') return row.success_rate > 1 ? row.success_rate / 100 : row.success_rate;
  return null;
}

export function percent(fraction) {
  if (fraction === null || fraction === undefined) return '—';
  return `${(fraction * 100).toFixed(fraction >= 0.9995 || fraction === 0 ? 0 : 1)}%`;
}

export function successTone(fraction) {
  if (fraction === null || fraction === undefined) return 'neutral';
  if (fraction >= 0.99) return 'good';
  if (fraction >= 0.95) return 'warn';
  return 'bad';
}

export function millis(value) {
  if (value === null || value === undefined) return '—';
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

export function latency(row) {
  const l = row?.latency_ms;
  if (!l) return '—';
  return `${millis(l.p50)} / ${millis(l.p95)} / ${millis(l.p99)}`;
}

// "5m ago", "in 23h" from an RFC 3339 time.
export function relative(time) {
  if (!time) return '';
  const at = Date.parse(time);
  if (Number.isNaN(at)) return time;
  const seconds = Math.round((at - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  const [n, unit] =
    abs < 90 ? [abs, 's'] : abs < 5400 ? [Math.round(abs / 60), 'm'] : abs < 172800 ? [Math.round(abs / 3600), 'h'] : [Math.round(abs / 86400), 'd'];
  return seconds >= 0 ? `in ${n}${unit}` : `${n}${unit} ago`;
}

// A time with its relative form: "2026-05-02T10:00:00Z (in 23h)".
export function when(time) {
  if (!time) return '';
  return h('span', { title: time }, `${time} (${relative(time)})`);
}

// The short name of an xDS type URL: `type.googleapis.com/weft.proxy.v1.Service` → `Service`.
export function shortType(url) {
  return String(url ?? '').split(/[./]/).pop();
}
