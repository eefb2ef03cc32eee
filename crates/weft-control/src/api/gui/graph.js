// The live service graph: who calls whom over the last minute, from
// `GET /api/v1/stats?by=edge&window=60s`, redrawn every few seconds as SVG.
//
// Callers, services and workloads are nodes. A request from a caller to a service that
// an endpoint (workload) answered is two edges: caller → service and service →
// workload; each carries its rate, success rate and whether the hop was mutual TLS.
// The layout is layered: every node one column right of the rightmost node calling
// it, so callers sit left of what they call.

import * as api from './api.js';
import { errorBox, h, notice, percent, rps, s, successRate, successTone, table } from './dom.js';
import { securityBadge } from './resources.js';

const REFRESH_MS = 3000;
const NODE_W = 196;
const NODE_H = 50;
const COLUMN = 420;
const ROW = 92;
const PAD = 28;

const enc = encodeURIComponent;

function short(text, max = 26) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// The caller of a stats row as a node.
function sourceNode(source, node) {
  if (!source || (!source.workload && !source.identity)) {
    return node('outside', { kind: 'external', label: 'outside the mesh', sub: 'unauthenticated callers' });
  }
  if (source.workload) {
    return node(`w:${source.namespace}/${source.workload}`, {
      kind: 'workload', label: source.workload, sub: `workload · ${source.namespace}`, ns: source.namespace, name: source.workload,
    });
  }
  // Only the identity is proven (the server side's view): show its service account.
  const m = /\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(source.identity);
  return node(`id:${source.identity}`, {
    kind: 'identity', label: m ? m[2] : source.identity, sub: m ? `identity · ${m[1]}` : 'identity',
  });
}

// Nodes and edges from `by=edge` rows, summing rows that share an edge.
export function model(rows) {
  const nodes = new Map();
  const edges = new Map();
  const node = (key, props) => {
    if (!nodes.has(key)) nodes.set(key, { key, ...props });
    return nodes.get(key);
  };
  const edge = (from, to) => {
    const key = `${from.key} -> ${to.key}`;
    if (!edges.has(key)) {
      edges.set(key, { key, from, to, requests: 0, successes: 0, rps: 0, security: new Set(), services: new Set() });
    }
    return edges.get(key);
  };
  for (const row of rows) {
    const d = row.destination ?? {};
    const from = sourceNode(row.source, node);
    const [svcName, svcNs] = (d.service ?? '').split('.');
    const service = d.service
      ? node(`s:${d.service}`, { kind: 'service', label: svcName, sub: `service · ${svcNs ?? d.namespace ?? ''}`, ns: svcNs ?? d.namespace, name: svcName })
      : null;
    const workload = d.workload
      ? node(`w:${d.namespace}/${d.workload}`, { kind: 'workload', label: d.workload, sub: `workload · ${d.namespace}`, ns: d.namespace, name: d.workload })
      : null;
    const hops = service && workload ? [[from, service], [service, workload]] : [[from, service ?? workload]];
    for (const [a, b] of hops) {
      if (!b) continue;
      const e = edge(a, b);
      e.requests += Number(row.requests) || 0;
      e.successes += Number(row.successes) || 0;
      e.rps += Number(row.rps) || 0;
      e.security.add(row.security ?? 'unknown');
      if (d.service) e.services.add(d.service);
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

// Column and row of every node.
function layout(g) {
  const rank = new Map(g.nodes.map((n) => [n.key, 0]));
  // Longest path from a caller, bounded so that a cycle cannot loop forever.
  for (let pass = 0; pass < g.nodes.length; pass += 1) {
    let changed = false;
    for (const e of g.edges) {
      const r = rank.get(e.from.key) + 1;
      if (e.from !== e.to && r > rank.get(e.to.key) && r < g.nodes.length) {
        rank.set(e.to.key, r);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const columns = [];
  for (const n of g.nodes) {
    const r = rank.get(n.key);
    (columns[r] ??= []).push(n);
  }
  const position = new Map();
  columns.forEach((column, c) => {
    // Order by where the callers sit (fewer crossings), then by name: stable frames.
    const weight = (n) => {
      const rows = g.edges.filter((e) => e.to === n && position.has(e.from.key)).map((e) => position.get(e.from.key).row);
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
    };
    column.sort((a, b) => weight(a) - weight(b) || a.key.localeCompare(b.key));
    column.forEach((n, row) => position.set(n.key, { col: c, row }));
  });
  const height = Math.max(...columns.map((c) => c?.length ?? 0));
  for (const [key, p] of position) {
    const offset = (height - columns[p.col].length) / 2; // centre short columns
    position.set(key, { ...p, x: PAD + p.col * COLUMN, y: PAD + (p.row + offset) * ROW });
  }
  return { position, width: PAD * 2 + (columns.length - 1) * COLUMN + NODE_W, height: PAD * 2 + (height - 1) * ROW + NODE_H };
}

function padlock(x, y) {
  return s(
    'g',
    { class: 'padlock', transform: `translate(${x} ${y})` },
    s('path', { d: 'M2 5 V3.2 a3 3 0 0 1 6 0 V5', class: 'shackle' }),
    s('rect', { x: 0.5, y: 5, width: 9, height: 7, rx: 1.5 }),
  );
}

function securityOf(e) {
  if (e.security.size === 1) return [...e.security][0];
  return [...e.security].includes('none') ? 'none' : 'unknown';
}

function nodeHref(n) {
  if (n.kind === 'service' && n.ns) return `#/services/${enc(n.ns)}/${enc(n.name)}`;
  if (n.kind === 'workload' && n.ns) return `#/workloads/${enc(n.ns)}/${enc(n.name)}`;
  return null;
}

// The graph as an SVG element.
export function draw(g) {
  const { position, width, height } = layout(g);
  const svg = s('svg', {
    class: 'graph-svg', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': `service graph: ${g.nodes.length} nodes, ${g.edges.length} edges`,
  });
  svg.append(
    s('defs', null, ['good', 'warn', 'bad', 'neutral'].map((tone) =>
      s('marker', { id: `arrow-${tone}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse', class: `arrow ${tone}` },
        s('path', { d: 'M0 0 L10 5 L0 10 z' })))),
  );
  const labels = [];
  for (const e of g.edges) {
    const a = position.get(e.from.key);
    const b = position.get(e.to.key);
    const rate = successRate(e);
    const tone = successTone(rate);
    const security = securityOf(e);
    let d;
    let mid;
    if (b.x > a.x) {
      const [x1, y1, x2, y2] = [a.x + NODE_W, a.y + NODE_H / 2, b.x, b.y + NODE_H / 2];
      const bend = (x2 - x1) / 2;
      d = `M${x1} ${y1} C${x1 + bend} ${y1} ${x2 - bend} ${y2} ${x2} ${y2}`;
      mid = [(x1 + x2) / 2, (y1 + y2) / 2];
    } else {
      // A call back to an earlier column (or itself): a loop under the nodes.
      const [x1, y1, x2, y2] = [a.x + NODE_W / 2, a.y + NODE_H, b.x + NODE_W / 2, b.y + NODE_H];
      d = `M${x1} ${y1} C${x1} ${y1 + 60} ${x2} ${y2 + 60} ${x2} ${y2}`;
      mid = [(x1 + x2) / 2, Math.max(y1, y2) + 45];
    }
    const widthPx = 1.5 + Math.min(5, Math.log10(1 + e.rps) * 2.5);
    svg.append(
      s('path', {
        class: `edge-line ${tone}`, d, 'stroke-width': widthPx.toFixed(1), 'marker-end': `url(#arrow-${tone})`,
      }, s('title', null, `${e.from.label} → ${e.to.label}: ${rps(e.rps)}, ${percent(rate)} success, ${security}`)),
    );
    const text = `${rps(e.rps)} · ${percent(rate)}`;
    const boxW = text.length * 6.6 + (security === 'mutual_tls' ? 48 : security === 'none' ? 64 : 16);
    const [mx, my] = mid;
    labels.push(
      s('g', {
        class: `edge ${tone}`, 'data-from': e.from.key, 'data-to': e.to.key, 'data-security': security,
        transform: `translate(${(mx - boxW / 2).toFixed(1)} ${(my - 11).toFixed(1)})`,
      },
      s('rect', { class: 'edge-label', width: boxW.toFixed(1), height: 22, rx: 11 }),
      s('text', { x: 8, y: 15, class: 'edge-text' }, text),
      security === 'mutual_tls'
        ? [padlock(boxW - 42, 4.5), s('text', { x: boxW - 29, y: 15, class: 'mtls' }, 'mTLS')]
        : security === 'none' ? s('text', { x: boxW - 58, y: 15, class: 'plain' }, 'plaintext') : null),
    );
  }
  for (const n of g.nodes) {
    const p = position.get(n.key);
    const box = s(
      'g',
      { class: `node ${n.kind}`, 'data-key': n.key, transform: `translate(${p.x} ${p.y})` },
      s('rect', { width: NODE_W, height: NODE_H, rx: n.kind === 'service' ? 25 : 8 }),
      s('text', { x: 14, y: 21, class: 'node-label' }, short(n.label)),
      s('text', { x: 14, y: 38, class: 'node-sub' }, short(n.sub, 30)),
      s('title', null, n.key),
    );
    const href = nodeHref(n);
    svg.append(href ? s('a', { href }, box) : box);
  }
  svg.append(...labels); // over the lines and nodes, so they stay legible
  return svg;
}

function legend() {
  return h(
    'div',
    { class: 'legend' },
    h('span', { class: 'swatch good' }, 'success ≥ 99%'),
    h('span', { class: 'swatch warn' }, '≥ 95%'),
    h('span', { class: 'swatch bad' }, '< 95%'),
    h('span', null, 'line width: request rate · rounded boxes: services · square: workloads'),
  );
}

export async function graphView(ctx) {
  ctx.el.append(h('div', { class: 'title' }, h('h1', null, 'Service graph'), h('span', { class: 'muted' }, `live: the last 60 s, redrawn every ${REFRESH_MS / 1000} s`)));
  const status = h('div', { class: 'graph-status muted' }, 'loading…');
  const canvas = h('div', { class: 'graph-canvas' });
  const edgesCard = h('section', { class: 'card', hidden: true });
  ctx.el.append(h('section', { class: 'card graph' }, status, canvas, legend()), edgesCard);
  const empty = (node) => {
    status.replaceChildren(node);
    canvas.replaceChildren();
    edgesCard.hidden = true;
  };
  ctx.every(REFRESH_MS, async () => {
    let data;
    try {
      data = await api.stats('edge', { signal: ctx.signal });
    } catch (e) {
      if (e instanceof api.ApiError && e.status === 401) throw e; // to the login page
      if (e.name !== 'AbortError') empty(errorBox(e));
      return;
    }
    if (!data) {
      empty(notice(`No data yet: this control plane has no stats endpoint (GET ${api.STATS_PATH} answers 404).`));
      return;
    }
    const g = model(data.rows ?? []);
    if (!g.edges.length) {
      empty(notice(`No data yet: no requests in the last ${data.window_seconds ?? 60} s.`));
      return;
    }
    status.replaceChildren(`${g.nodes.length} nodes, ${g.edges.length} edges · updated ${new Date().toLocaleTimeString()}`);
    canvas.replaceChildren(draw(g));
    edgesCard.hidden = false;
    edgesCard.replaceChildren(
      h('h2', null, 'Edges'),
      table(
        ['From', 'To', 'Service', 'Rate', 'Success', 'Requests', 'Security'],
        g.edges.map((e) => [
          e.from.label, e.to.label, [...e.services].join(', ') || '—', rps(e.rps), percent(successRate(e)), String(e.requests), securityBadge(securityOf(e)),
        ]),
      ),
    );
  });
}
