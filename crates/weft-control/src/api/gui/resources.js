// The resource views: meshes, services (list and one service with its ports,
// endpoints, golden metrics, routes, policies and conditions), workloads with their
// proxies' xDS status, and routes and policies of every kind the API lists.
//
// Each view is `async (ctx, args)`: it renders into `ctx.el`, fetches with
// `ctx.signal` (aborted when the user navigates away) and repeats work with
// `ctx.every` (stopped then too).

import * as api from './api.js';
import {
  badge, conditions, conditionsOf, errorBox, facts, h, health, labels, latency, link,
  notice, percent, raw, relative, rps, section, shortType, successRate, successTone,
  table, when,
} from './dom.js';

const enc = encodeURIComponent;

// Kinds with views of their own; every other namespaced kind is a route or a policy.
const OWN_VIEWS = new Set(['services', 'workloads']);

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

function nameOf(object) {
  return object?.metadata?.name ?? '?';
}

function nsOf(object) {
  return object?.metadata?.namespace ?? 'default';
}

function title(ctx, text, ...extra) {
  ctx.el.append(h('div', { class: 'title' }, h('h1', null, text), extra));
}

// The selector of a service: a label map (or `matchLabels`).
function selectorOf(service) {
  const selector = service?.spec?.selector ?? {};
  return selector.matchLabels ?? selector;
}

// Whether every selector label is on the workload; an empty selector selects nothing.
function selects(selector, workload) {
  const wanted = Object.entries(selector ?? {});
  if (!wanted.length) return false;
  const have = workload?.metadata?.labels ?? {};
  return wanted.every(([k, v]) => have[k] === v);
}

function identityOf(workload, trustDomain) {
  const sa = workload?.spec?.serviceAccount ?? 'default';
  return `spiffe://${trustDomain}/ns/${nsOf(workload)}/sa/${sa}`;
}

function phaseBadge(phase) {
  const tone = { Healthy: 'good', Disconnected: 'warn', Unhealthy: 'bad' }[phase] ?? 'neutral';
  return badge(phase ?? 'unknown', tone);
}

async function trustDomain(ctx) {
  const meshes = await api.list('/v1/meshes', { signal: ctx.signal });
  return meshes[0]?.spec?.trustDomain ?? DEFAULT_TRUST_DOMAIN;
}

// Whether `route` names service `ns/name` among its parentRefs.
function attachesTo(route, ns, name) {
  return (route?.spec?.parentRefs ?? []).some(
    (p) => p.name === name && (p.namespace ?? nsOf(route)) === ns && (p.kind ?? 'Service') === 'Service',
  );
}

function targetsService(policy, ns, name) {
  return nsOf(policy) === ns && (policy?.spec?.targetRefs ?? []).some((t) => (t.kind ?? 'Service') === 'Service' && t.name === name);
}

function exportText(list) {
  if (!list?.length) return 'not yet compiled';
  if (list.length === 1 && list[0] === '*') return 'every namespace (*)';
  return list.map((ns) => (ns === '.' ? 'its own namespace (.)' : ns)).join(', ');
}

function refText(ref, ownNs) {
  const ns = ref.namespace && ref.namespace !== ownNs ? `${ref.namespace}/` : '';
  const port = ref.port ?? ref.sectionName;
  return `${ref.kind ?? 'Service'} ${ns}${ref.name ?? ''}${port ? `:${port}` : ''}`;
}

// What a route or policy applies to, from its spec (or, failing that, its status).
export function appliesTo(object) {
  const spec = object?.spec ?? {};
  const own = nsOf(object);
  const refs = [...(spec.parentRefs ?? []), ...(spec.targetRefs ?? []), ...(spec.targetRef ? [spec.targetRef] : [])];
  if (refs.length) return refs.map((r) => refText(r, own));
  const status = object?.status ?? {};
  const seen = [...(status.parents ?? []).map((p) => p.parentRef), ...(status.ancestors ?? []).map((a) => a.ancestorRef)].filter(Boolean);
  if (seen.length) return seen.map((r) => refText(r, own));
  if (spec.selector) return [`workloads with ${Object.entries(spec.selector.matchLabels ?? spec.selector).map(([k, v]) => `${k}=${v}`).join(', ')}`];
  return [`every service in namespace ${own}`];
}

// A route's backends with their weights: "echo-v1:80 ×90, echo-v2:80 ×10".
function backendsOf(route) {
  const out = [];
  for (const rule of route?.spec?.rules ?? []) {
    for (const b of rule.backendRefs ?? []) {
      out.push(`${b.name}${b.port ? `:${b.port}` : ''}${b.weight !== undefined ? ` ×${b.weight}` : ''}`);
    }
  }
  return [...new Set(out)].join(', ');
}

function conditionBadges(object) {
  const list = conditionsOf(object);
  if (!list.length) return h('span', { class: 'muted' }, 'none reported');
  return h(
    'span',
    { class: 'labels' },
    list.map((c) =>
      badge(`${c.type} ${c.status}`, { True: 'good', False: 'bad' }[c.status] ?? 'neutral', `${c.scope ? `${c.scope}: ` : ''}${c.reason}: ${c.message}`),
    ),
  );
}

// === meshes ===

export async function meshesView(ctx) {
  const meshes = await api.list('/v1/meshes', { signal: ctx.signal });
  title(ctx, 'Meshes');
  if (!meshes.length) {
    ctx.el.append(notice('No Mesh is stored yet: the control plane uses its defaults (trust domain cluster.local, strict mutual TLS). Apply a Mesh named default to change them.'));
    return;
  }
  for (const mesh of meshes) {
    const spec = mesh.spec ?? {};
    const status = mesh.status ?? {};
    ctx.el.append(
      section(
        `Mesh ${nameOf(mesh)}`,
        facts([
          ['Trust domain', spec.trustDomain ?? DEFAULT_TRUST_DOMAIN],
          ['mTLS mode', spec.mtls?.mode ?? 'strict'],
          ['Default action', spec.defaultAction ?? 'allow'],
          ['CA', [spec.ca?.type ?? 'builtin', status.ca?.phase ? ` (${status.ca.phase})` : ''].join('')],
          ['CA signer', status.ca?.signer],
          ['DNS domain', spec.dns?.domain ?? 'cluster.local'],
          ['VIP range', spec.dns?.vipRange],
          ['Default exportTo', (spec.defaultExportTo ?? ['*']).join(', ')],
          ['Created', when(mesh.metadata?.creationTimestamp)],
        ]),
        h('h3', null, 'Conditions'),
        conditions(conditionsOf(mesh)),
        raw(mesh),
      ),
    );
  }
}

// === services ===

export async function servicesView(ctx) {
  const o = { signal: ctx.signal };
  const [services, workloads] = await Promise.all([api.list('/v1/services', o), api.list('/v1/workloads', o)]);
  title(ctx, 'Services');
  ctx.el.append(
    section(
      `${services.length} service${services.length === 1 ? '' : 's'}`,
      table(
        ['Name', 'Namespace', 'Ports', 'VIP', 'Endpoints', 'Conditions'],
        services.map((svc) => {
          const selector = selectorOf(svc);
          const endpoints = workloads.filter((w) => nsOf(w) === nsOf(svc) && selects(selector, w));
          return [
            link(`#/services/${enc(nsOf(svc))}/${enc(nameOf(svc))}`, nameOf(svc)),
            nsOf(svc),
            (svc.spec?.ports ?? []).map((p) => `${p.port}/${p.protocol ?? p.appProtocol ?? 'auto'}`).join(', '),
            svc.status?.vip ?? svc.spec?.vip ?? '—',
            String(svc.status?.endpoints ?? endpoints.length),
            health(conditionsOf(svc)),
          ];
        }),
        { empty: 'No services yet: apply a Service (weft apply -f service.yaml).' },
      ),
    ),
  );
}

// Stats rows about service `ns/name`.
function forService(rows, ns, name) {
  return rows.filter((r) => {
    const d = r.destination ?? {};
    const svc = d.service ?? '';
    const sameNs = !d.namespace || d.namespace === ns;
    return svc === `${name}.${ns}` || svc.startsWith(`${name}.${ns}.`) || (svc === name && sameNs);
  });
}

function sum(rows, field) {
  return rows.reduce((total, r) => total + (Number(r[field]) || 0), 0);
}

function metricsRow(rows) {
  const requests = sum(rows, 'requests');
  const successes = sum(rows, 'successes');
  return { requests, successes, rps: sum(rows, 'rps'), latency_ms: rows.length === 1 ? rows[0].latency_ms : null };
}

// The service's golden metrics card, refreshed every few seconds.
async function serviceMetrics(ctx, card, ns, name) {
  const o = { namespace: ns, signal: ctx.signal };
  const [byService, byWorkload, byEdge] = await Promise.all([
    api.stats('service', o),
    api.stats('workload', o),
    api.stats('edge', o),
  ]);
  const body = h('div', { class: 'metrics-body' });
  if (!byService) {
    body.append(notice(`No data yet: this control plane has no stats endpoint (GET ${api.STATS_PATH} answers 404).`));
  } else {
    const svcRows = forService(byService.rows ?? [], ns, name);
    const window = `${byService.window_seconds ?? 60} s`;
    if (!svcRows.length) {
      body.append(notice(`No requests to this service in the last ${window}.`));
    } else {
      const total = metricsRow(svcRows);
      const rate = successRate(total);
      body.append(
        h(
          'div',
          { class: 'golden' },
          h('div', { class: 'stat' }, h('span', { class: 'value' }, rps(total.rps)), h('span', { class: 'label' }, 'request rate')),
          h('div', { class: `stat ${successTone(rate)}` }, h('span', { class: 'value' }, percent(rate)), h('span', { class: 'label' }, 'success rate')),
          h('div', { class: 'stat' }, h('span', { class: 'value' }, latency(svcRows.length === 1 ? svcRows[0] : null)), h('span', { class: 'label' }, 'latency p50 / p95 / p99')),
          h('div', { class: 'stat' }, h('span', { class: 'value' }, String(total.requests)), h('span', { class: 'label' }, `requests in ${window}`)),
        ),
      );
    }
    const endpointRows = (byWorkload?.rows ?? []).filter((r) => forService([r], ns, name).length || (r.destination?.namespace === ns && !r.destination?.service));
    const callers = forService(byEdge?.rows ?? [], ns, name);
    if (callers.length) {
      body.append(
        h('h3', null, 'By caller'),
        table(
          ['Caller', 'Endpoint', 'Rate', 'Success', 'Latency p50/p95/p99', 'Security'],
          callers.map((r) => [
            r.source?.workload ? `${r.source.namespace}/${r.source.workload}` : r.source?.identity || 'unknown',
            r.destination?.workload || '—',
            rps(r.rps),
            percent(successRate(r)),
            latency(r),
            securityBadge(r.security),
          ]),
        ),
      );
    }
    ctx.metricsByWorkload = new Map(endpointRows.map((r) => [r.destination?.workload, r]));
  }
  card.replaceChildren(h('h2', null, 'Golden metrics (last 60 s)'), body);
}

export function securityBadge(security) {
  if (security === 'mutual_tls') return badge('mTLS', 'good', 'mutual TLS between the proxies');
  if (security === 'none') return badge('plaintext', 'bad', 'no TLS: a caller or endpoint outside the mesh');
  return badge(security ?? 'unknown', 'neutral');
}

export async function serviceView(ctx, [ns, name]) {
  const o = { signal: ctx.signal };
  const [service, workloads, domain, kinds] = await Promise.all([
    api.get(`/v1/namespaces/${enc(ns)}/services/${enc(name)}`, o),
    api.list(`/v1/namespaces/${enc(ns)}/workloads`, o),
    trustDomain(ctx),
    api.kinds(o),
  ]);
  const others = kinds.filter((k) => k.namespaced && !OWN_VIEWS.has(k.plural));
  const lists = await Promise.all(others.map((k) => api.list(`/v1/${k.plural}`, o).then((items) => [k, items])));
  const routes = [];
  const policies = [];
  for (const [kind, items] of lists) {
    for (const item of items) {
      if (attachesTo(item, ns, name)) routes.push([kind, item]);
      else if (targetsService(item, ns, name)) policies.push([kind, item]);
    }
  }
  const spec = service.spec ?? {};
  const status = service.status ?? {};
  const selector = selectorOf(service);
  const allowed = spec.serviceAccounts ?? [];
  const endpoints = workloads.filter((w) => selects(selector, w));

  title(ctx, `Service ${name}`, badge(ns, 'label', 'namespace'), link(`#/tap/service/${enc(`${name}.${ns}`)}`, 'Tap this service'));
  ctx.el.append(
    section(
      'Overview',
      facts([
        ['Namespace', ns],
        ['DNS name', `${name}.${ns}.svc`],
        ['VIP', status.vip ?? spec.vip ?? 'none yet'],
        ['Selector', labels(selector)],
        ['Served by', allowed.length ? allowed.join(', ') : 'any service account'],
        ['Exported to', exportText(status.exportTo ?? spec.exportTo)],
        ['Labels', labels(service.metadata?.labels)],
        ['Created', when(service.metadata?.creationTimestamp)],
      ]),
    ),
    section(
      'Ports',
      table(
        ['Name', 'Port', 'Target port', 'Protocol'],
        (spec.ports ?? []).map((p) => [p.name ?? '—', String(p.port), String(p.targetPort ?? p.port), p.protocol ?? p.appProtocol ?? 'auto']),
      ),
    ),
  );
  const metricsCard = h('section', { class: 'card metrics' }, h('h2', null, 'Golden metrics (last 60 s)'), h('p', { class: 'muted' }, 'loading…'));
  const endpointsCard = h('section', { class: 'card endpoints' });
  ctx.el.append(metricsCard, endpointsCard);
  const renderEndpoints = () => {
    const metrics = ctx.metricsByWorkload ?? new Map();
    endpointsCard.replaceChildren(
      h('h2', null, 'Endpoints'),
      table(
        ['Workload', 'Address', 'Phase', 'Identity', 'Rate', 'Success'],
        endpoints.map((w) => {
          const sa = w.spec?.serviceAccount ?? 'default';
          const refused = allowed.length && !allowed.includes(sa);
          const m = metrics.get(nameOf(w));
          return [
            link(`#/workloads/${enc(nsOf(w))}/${enc(nameOf(w))}`, nameOf(w)),
            w.spec?.address ?? '—',
            refused ? badge('refused', 'bad', `service account ${sa} is not in spec.serviceAccounts`) : phaseBadge(w.status?.phase),
            h('code', null, identityOf(w, domain)),
            m ? rps(m.rps) : '—',
            m ? percent(successRate(m)) : '—',
          ];
        }),
        { empty: 'No endpoints: no workload in this namespace matches the selector.' },
      ),
    );
  };
  renderEndpoints();
  const refresh = async () => {
    try {
      await serviceMetrics(ctx, metricsCard, ns, name);
      renderEndpoints();
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (e instanceof api.ApiError && e.status === 401) throw e; // to the login page
      metricsCard.replaceChildren(h('h2', null, 'Golden metrics (last 60 s)'), errorBox(e));
    }
  };
  ctx.every(5000, refresh);
  ctx.el.append(
    section(
      'Routes',
      routes.length
        ? routes.map(([kind, r]) =>
            h(
              'div',
              { class: 'attached' },
              h('h3', null, link(`#/policies/${enc(kind.plural)}/${enc(nsOf(r))}/${enc(nameOf(r))}`, `${kind.kind} ${nsOf(r)}/${nameOf(r)}`)),
              facts([['Backends', backendsOf(r) || 'none']]),
              conditions(conditionsOf(r)),
            ),
          )
        : h('p', { class: 'empty' }, 'No routes attached: requests go to the service\'s own endpoints.'),
    ),
    section(
      'Policies',
      table(
        ['Kind', 'Name', 'Conditions'],
        policies.map(([kind, p]) => [kind.kind, link(`#/policies/${enc(kind.plural)}/${enc(nsOf(p))}/${enc(nameOf(p))}`, nameOf(p)), conditionBadges(p)]),
        { empty: 'No policy targets this service.' },
      ),
    ),
    section('Conditions', conditions(conditionsOf(service), { empty: 'No conditions: the service has no problem to report.' }), raw(service)),
  );
}

// === workloads ===

// The xDS state of a proxy document in a badge: in sync, waiting, or refusing.
function xdsBadge(proxy) {
  if (!proxy) return badge('not connected', 'neutral');
  const types = proxy.types ?? [];
  const nacked = types.filter((t) => t.lastNack && (!t.acked || t.lastNack.at >= t.acked.at));
  if (nacked.length) {
    return badge(`NACK ${nacked.map((t) => shortType(t.typeUrl)).join(', ')}`, 'bad', nacked.map((t) => t.lastNack.message).join('\n'));
  }
  const pending = types.filter((t) => t.pendingNonce);
  if (pending.length) return badge('pending', 'warn', `waiting for ACK of ${pending.map((t) => shortType(t.typeUrl)).join(', ')}`);
  return badge('in sync', 'good', 'every response sent was ACKed');
}

function proxiesByNode(proxies) {
  const map = new Map();
  for (const p of proxies) {
    const r = p.registration;
    map.set(p.nodeId ?? (r ? `${r.namespace}/${r.name}` : ''), p);
  }
  return map;
}

function certificateCell(workload) {
  const notAfter = workload?.status?.certificate?.notAfter;
  if (!notAfter && workload?.status?.issuedCertificate) {
    return h('span', { class: 'muted', title: 'signed before the workload registered, so no expiry was recorded; it is from the next renewal on' }, 'issued, expiry not recorded');
  }
  if (!notAfter) return h('span', { class: 'muted' }, '—');
  const left = Date.parse(notAfter) - Date.now();
  const tone = left <= 0 ? 'bad' : left < 3600000 ? 'warn' : 'neutral';
  return badge(relative(notAfter), tone, `certificate valid until ${notAfter}`);
}

export async function workloadsView(ctx) {
  const o = { signal: ctx.signal };
  const [workloads, proxies] = await Promise.all([api.list('/v1/workloads', o), api.get('/v1/proxies', o)]);
  const byNode = proxiesByNode(proxies.items ?? []);
  title(ctx, 'Workloads');
  ctx.el.append(
    section(
      `${workloads.length} workload${workloads.length === 1 ? '' : 's'}`,
      table(
        ['Name', 'Namespace', 'Phase', 'Address', 'Service account', 'Control plane', 'Proxy', 'Certificate expires', 'xDS'],
        workloads.map((w) => {
          const proxy = byNode.get(`${nsOf(w)}/${nameOf(w)}`);
          return [
            link(`#/workloads/${enc(nsOf(w))}/${enc(nameOf(w))}`, nameOf(w)),
            nsOf(w),
            phaseBadge(w.status?.phase),
            w.spec?.address ?? '—',
            w.spec?.serviceAccount ?? 'default',
            w.status?.controlPlane ?? '—',
            w.status?.proxyVersion ?? proxy?.registration?.proxyVersion ?? '—',
            certificateCell(w),
            xdsBadge(proxy),
          ];
        }),
        { empty: 'No workloads yet: they appear when their proxies register.' },
      ),
    ),
  );
}

function versions(map) {
  const entries = Object.entries(map ?? {});
  if (!entries.length) return h('span', { class: 'muted' }, 'none');
  return h('span', { class: 'versions' }, entries.map(([name, v]) => h('code', { title: name }, `${name}@${v}`)));
}

export async function workloadView(ctx, [ns, name]) {
  const o = { signal: ctx.signal };
  const [workload, proxies, services, domain] = await Promise.all([
    api.get(`/v1/namespaces/${enc(ns)}/workloads/${enc(name)}`, o),
    api.get('/v1/proxies', o),
    api.list(`/v1/namespaces/${enc(ns)}/services`, o),
    trustDomain(ctx),
  ]);
  const proxy = proxiesByNode(proxies.items ?? []).get(`${ns}/${name}`);
  const spec = workload.spec ?? {};
  const status = workload.status ?? {};
  const serves = services.filter((svc) => selects(selectorOf(svc), workload));
  title(ctx, `Workload ${name}`, badge(ns, 'label', 'namespace'), phaseBadge(status.phase), link(`#/tap/workload/${enc(`${ns}/${name}`)}`, 'Tap this workload'));
  ctx.el.append(
    section(
      'Overview',
      facts([
        ['Identity', h('code', null, identityOf(workload, domain))],
        ['Address', spec.address],
        ['HBONE', spec.hbone],
        ['Ports', (spec.ports ?? []).map((p) => `${p.port}/${p.protocol ?? 'auto'}`).join(', ') || 'none'],
        ['Zone', spec.zone],
        ['Labels', labels(workload.metadata?.labels)],
        ['Serves', serves.length ? serves.map((svc) => [link(`#/services/${enc(ns)}/${enc(nameOf(svc))}`, nameOf(svc)), ' ']) : 'no service selects it'],
        ['Since', when(status.since)],
      ]),
    ),
    section(
      'Proxy',
      facts([
        ['Connected to', status.controlPlane ? `control-plane instance ${status.controlPlane}` : 'no instance'],
        ['Connection', proxy ? `${proxy.connId} from ${proxy.peer ?? '?'}, since ${proxy.connectedAt}` : 'not connected to this instance'],
        ['Proxy version', status.proxyVersion ?? proxy?.registration?.proxyVersion],
        ['Certificate', status.certificate?.notAfter ? [certificateCell(workload), ` until ${status.certificate.notAfter}`, status.certificate.signer ? `, signed by ${status.certificate.signer}` : ''] : certificateCell(workload)],
        ['Trust bundle', status.trustBundle ? `version ${status.trustBundle} ACKed` : null],
        ['xDS', xdsBadge(proxy)],
      ]),
      proxy ? xdsTable(proxy) : null,
    ),
    section('Conditions', conditions(conditionsOf(workload)), raw(workload), proxy ? raw(proxy, 'Proxy document (JSON)') : null),
  );
}

function xdsTable(proxy) {
  const types = proxy.types ?? [];
  const nacks = types.filter((t) => t.lastNack);
  return h(
    'div',
    null,
    nacks.map((t) =>
      h(
        'div',
        { class: 'error nack' },
        h('strong', null, `NACK of ${shortType(t.typeUrl)} (nonce ${t.lastNack.nonce}, ${relative(t.lastNack.at)}): `),
        t.lastNack.message,
        h('ul', null, (t.lastNack.errors ?? []).map((e) => h('li', null, `${e.name}: ${e.message}`))),
      ),
    ),
    table(
      ['Type', 'Subscribed', 'Sent', 'ACKed', 'Pending', 'Last NACK'],
      types.map((t) => [
        shortType(t.typeUrl),
        (t.subscribed ?? []).join(', ') || '—',
        t.lastSent ? [versions(t.lastSent.versions), h('div', { class: 'muted' }, `nonce ${t.lastSent.nonce}, ${relative(t.lastSent.at)}`)] : '—',
        t.acked ? [versions(t.acked.versions), h('div', { class: 'muted' }, `nonce ${t.acked.nonce}, ${relative(t.acked.at)}`)] : '—',
        t.pendingNonce ?? '—',
        t.lastNack ? h('span', { class: 'bad-text' }, t.lastNack.message) : '—',
      ]),
      { empty: 'No resource types subscribed yet.' },
    ),
  );
}

// === routes and policies ===

export async function policiesView(ctx) {
  const o = { signal: ctx.signal };
  const kinds = (await api.kinds(o)).filter((k) => k.namespaced && !OWN_VIEWS.has(k.plural));
  const lists = await Promise.all(kinds.map((k) => api.list(`/v1/${k.plural}`, o).then((items) => [k, items])));
  title(ctx, 'Routes and policies');
  const routeKinds = lists.filter(([k]) => /Route$/.test(k.kind));
  const policyKinds = lists.filter(([k]) => !/Route$/.test(k.kind));
  for (const [group, entries] of [['Routes', routeKinds], ['Policies', policyKinds]]) {
    ctx.el.append(h('h2', { class: 'group' }, group));
    for (const [kind, items] of entries.filter(([, items]) => items.length)) {
      const route = /Route$/.test(kind.kind);
      ctx.el.append(
        section(
          `${kind.kind} (${items.length})`,
          table(
            route ? ['Name', 'Namespace', 'Attached to', 'Backends', 'Conditions'] : ['Name', 'Namespace', 'Applies to', 'Conditions'],
            items.map((item) => {
              const cells = [
                link(`#/policies/${enc(kind.plural)}/${enc(nsOf(item))}/${enc(nameOf(item))}`, nameOf(item)),
                nsOf(item),
                appliesTo(item).join(', '),
              ];
              if (route) cells.push(backendsOf(item) || '—');
              cells.push(conditionBadges(item));
              return cells;
            }),
          ),
        ),
      );
    }
    const none = entries.filter(([, items]) => !items.length).map(([kind]) => kind.kind);
    if (none.length) ctx.el.append(h('p', { class: 'empty none-of' }, `No objects of kind ${none.join(', ')}.`));
  }
}

export async function policyView(ctx, [plural, ns, name]) {
  const o = { signal: ctx.signal };
  const [object, kinds] = await Promise.all([api.get(`/v1/namespaces/${enc(ns)}/${enc(plural)}/${enc(name)}`, o), api.kinds(o)]);
  const kind = kinds.find((k) => k.plural === plural)?.kind ?? object.kind ?? plural;
  title(ctx, `${kind} ${name}`, badge(ns, 'label', 'namespace'));
  ctx.el.append(
    section(
      'Overview',
      facts([
        ['Applies to', appliesTo(object).join(', ')],
        ['Backends', /Route$/.test(kind) ? backendsOf(object) || 'none' : null],
        ['Labels', labels(object.metadata?.labels)],
        ['Created', when(object.metadata?.creationTimestamp)],
      ]),
    ),
    section('Conditions', conditions(conditionsOf(object)), raw(object)),
  );
}

