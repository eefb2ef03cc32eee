// The live tap: the requests one workload's (or one service's) proxies see, as they
// happen, from `GET /api/v1/tap?…` (one JSON object per line, read with a stream
// reader until the user stops it or leaves the page).

import * as api from './api.js';
import { badge, errorBox, facts, h, millis, notice, table } from './dom.js';

// Rows kept on screen; older ones drop off the bottom.
const MAX_ROWS = 500;

const METHODS = ['', 'GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];

function statusTone(status) {
  if (status >= 500) return 'bad';
  if (status >= 400) return 'warn';
  if (status >= 200 && status < 400) return 'good';
  return 'neutral';
}

function clock(time) {
  const at = Date.parse(time);
  if (Number.isNaN(at)) return String(time ?? '');
  const d = new Date(at);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

function headersTable(map) {
  return table(
    ['Header', 'Value'],
    Object.entries(map ?? {}).map(([k, v]) => [h('code', null, k), v === '[redacted]' ? h('span', { class: 'muted' }, v) : String(v)]),
    { empty: 'none' },
  );
}

function input(name, title, placeholder, props = {}) {
  return h('label', null, h('span', null, title), h('input', { name, placeholder, autocomplete: 'off', ...props }));
}

export async function tapView(ctx, [kind, target]) {
  const o = { signal: ctx.signal };
  const [workloads, services] = await Promise.all([api.list('/v1/workloads', o), api.list('/v1/services', o)]);
  const preset = kind && target ? `${kind}=${target}` : '';
  const select = h(
    'select',
    { name: 'target', required: true },
    h('option', { value: '' }, 'pick a workload or service'),
    h('optgroup', { label: 'Workloads' }, workloads.map((w) => {
      const value = `workload=${w.metadata.namespace}/${w.metadata.name}`;
      return h('option', { value, selected: value === preset }, `${w.metadata.namespace}/${w.metadata.name}`);
    })),
    h('optgroup', { label: 'Services' }, services.map((svc) => {
      const value = `service=${svc.metadata.name}.${svc.metadata.namespace}`;
      return h('option', { value, selected: value === preset }, `${svc.metadata.name}.${svc.metadata.namespace}`);
    })),
  );
  const method = h('select', { name: 'method' }, METHODS.map((m) => h('option', { value: m }, m || 'any')));
  const start = h('button', { type: 'submit', class: 'primary' }, 'Start');
  const stop = h('button', { type: 'button', disabled: true }, 'Stop');
  const clear = h('button', { type: 'button' }, 'Clear');
  const form = h(
    'form',
    { class: 'tap-form card' },
    h('label', null, h('span', null, 'Target'), select),
    input('path', 'Path prefix', '/api'),
    h('label', null, h('span', null, 'Method'), method),
    input('status', 'Status', '503 or 5xx'),
    input('caller', 'Caller', 'spiffe://…/ns/…/sa/…'),
    input('max_rps', 'Max rps', '10', { type: 'number', min: 1, max: 1000 }),
    h('div', { class: 'buttons' }, start, stop, clear),
  );
  const state = h('div', { class: 'tap-state muted' }, 'Pick a target and press Start.');
  const tbody = h('tbody');
  const detail = h('section', { class: 'card tap-detail', hidden: true });
  const grid = h(
    'table',
    { class: 'grid tap-rows' },
    h('thead', null, h('tr', null, ['Time', 'Direction', 'Method', 'Authority', 'Path', 'Status', 'gRPC', 'Duration', 'From', 'To'].map((t) => h('th', null, t)))),
    tbody,
  );
  ctx.el.append(
    h('div', { class: 'title' }, h('h1', null, 'Live tap'), h('span', { class: 'muted' }, 'requests as the proxies see them; header values outside an allow-list are redacted')),
    form, state, h('section', { class: 'card' }, grid), detail,
  );

  let running = null;
  let count = 0;
  const finish = (message) => {
    running = null;
    start.disabled = false;
    stop.disabled = true;
    if (message) state.replaceChildren(message);
  };
  const addRow = (ev) => {
    count += 1;
    const tr = h(
      'tr',
      { class: 'tap-row', tabindex: 0 },
      [
        clock(ev.time), ev.direction ?? '', ev.method ?? '', ev.authority ?? '', h('code', null, ev.path ?? ''),
        badge(String(ev.status ?? '—'), statusTone(ev.status)), ev.grpc_status ?? '', millis(ev.duration_ms),
        ev.source_identity || 'unauthenticated', ev.destination_workload || ev.destination_identity || '',
      ].map((c) => h('td', null, c)),
    );
    tr.addEventListener('click', () => {
      detail.hidden = false;
      detail.replaceChildren(
        h('h2', null, `${ev.method ?? ''} ${ev.authority ?? ''}${ev.path ?? ''} → ${ev.status ?? ''}`),
        facts([
          ['Time', ev.time], ['Direction', ev.direction], ['Proxy', ev.proxy], ['gRPC status', ev.grpc_status],
          ['Duration', millis(ev.duration_ms)], ['Source identity', ev.source_identity || 'unauthenticated'],
          ['Destination identity', ev.destination_identity], ['Destination workload', ev.destination_workload],
          ['Destination service', ev.destination_service],
        ]),
        h('h3', null, 'Request headers'), headersTable(ev.request_headers),
        h('h3', null, 'Response headers'), headersTable(ev.response_headers),
      );
    });
    tbody.prepend(tr);
    while (tbody.childElementCount > MAX_ROWS) tbody.lastElementChild.remove();
    state.replaceChildren(`streaming: ${count} request${count === 1 ? '' : 's'} seen`);
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (running || !select.value) return;
    const [key, value] = select.value.split(/=(.*)/s);
    const params = { [key]: value };
    for (const field of ['path', 'status', 'caller', 'max_rps']) {
      const v = form.elements[field].value.trim();
      if (v) params[field] = v;
    }
    if (method.value) params.method = method.value;
    running = new AbortController();
    const abort = () => running?.abort();
    ctx.signal.addEventListener('abort', abort, { once: true });
    start.disabled = true;
    stop.disabled = false;
    count = 0;
    state.replaceChildren(`connected to ${value}: waiting for requests…`);
    try {
      const found = await api.tap(params, (ev) => {
        if (ev.error) state.replaceChildren(errorBox(ev.error.message ?? JSON.stringify(ev.error)));
        else addRow(ev);
      }, { signal: running.signal });
      if (!found) {
        finish(notice(`No data yet: this control plane has no tap endpoint (GET ${api.TAP_PATH} answers 404).`));
      } else {
        finish(`stopped: ${count} request${count === 1 ? '' : 's'} seen`);
      }
    } catch (e) {
      finish(e.name === 'AbortError' ? `stopped: ${count} request${count === 1 ? '' : 's'} seen` : errorBox(e));
    }
  });
  stop.addEventListener('click', () => running?.abort());
  clear.addEventListener('click', () => {
    tbody.replaceChildren();
    detail.hidden = true;
    count = 0;
  });
  if (preset && select.value === preset) state.replaceChildren(`Press Start to tap ${target}.`);
}
