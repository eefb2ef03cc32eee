// The control plane's JSON API, as the GUI uses it: every call carries the operator
// token the user pasted (kept in this tab's sessionStorage, nowhere else), and every
// failure becomes an ApiError with the API's own message.
//
// The stats and tap endpoints are newer than the rest of the API: a control plane
// without them answers 404 "no such path", which the views show as "no data yet".

const TOKEN_KEY = 'weft.operatorToken';

// Where the stats and tap endpoints may be (the API's `/v1/…`, or the `/api/v1/…` the
// GUI was first specified against); the first that answers is kept.
const STATS_PATHS = ['/v1/stats', '/api/v1/stats'];
const TAP_PATHS = ['/v1/tap', '/api/v1/tap'];

// How long "this control plane has no such endpoint" is believed before asking again.
const ABSENT_FOR_MS = 30000;

export class ApiError extends Error {
  constructor(status, reason, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.reason = reason;
  }

  // The answer of a path the API does not route (its fallback's 404).
  get noSuchPath() {
    return this.status === 404 && /^no such path/.test(this.message);
  }

  toString() {
    return this.status ? `${this.status} ${this.reason}: ${this.message}` : this.message;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// The role a token's prefix names (the API decides; this is only for display).
export function roleOf(value) {
  if (value?.startsWith('weft-admin-')) return 'admin';
  if (value?.startsWith('weft-read-')) return 'read-only';
  return 'operator';
}

function headers(accept, bearer) {
  return { Authorization: `Bearer ${bearer ?? token() ?? ''}`, Accept: accept };
}

async function errorOf(resp) {
  let reason = resp.statusText;
  let message = `the control plane answered ${resp.status}`;
  try {
    const body = await resp.json();
    if (body?.error) {
      reason = body.error.reason ?? reason;
      message = body.error.message ?? message;
    }
  } catch {
    // Not the API's JSON error body: keep the status line.
  }
  return new ApiError(resp.status, reason, message);
}

async function send(path, { signal, bearer, accept = 'application/json' } = {}) {
  let resp;
  try {
    resp = await fetch(path, { headers: headers(accept, bearer), signal, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Unreachable', `cannot reach the control plane: ${e.message}`);
  }
  if (!resp.ok) throw await errorOf(resp);
  return resp;
}

// GET `path` as JSON.
export async function get(path, options) {
  return (await send(path, options)).json();
}

// The items of a list path (`/v1/services`), sorted by namespace and name.
export async function list(path, options) {
  const body = await get(path, options);
  const items = body?.items ?? [];
  return items.sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
}

export function keyOf(object) {
  const meta = object?.metadata ?? {};
  return `${meta.namespace ?? ''}/${meta.name ?? ''}`;
}

// Checks a token without keeping it: the API's error when it is refused.
export async function check(bearer) {
  await get('/v1/meshes', { bearer });
}

// The kinds the API serves, from its OpenAPI document: [{plural, kind, namespaced}].
let kindsCache = null;
export async function kinds(options) {
  if (kindsCache) return kindsCache;
  const doc = await get('/openapi.json', options);
  const found = [];
  for (const [path, item] of Object.entries(doc?.paths ?? {})) {
    // A kind's collection: listed ("List Service objects") and created there; the
    // namespaced kinds under /v1/namespaces/{namespace}/, the cluster-scoped at /v1/.
    const kind = /^List (\w+) objects/.exec(item.get?.summary ?? '')?.[1];
    const m = /^\/v1\/(namespaces\/\{namespace\}\/)?([a-z]+)$/.exec(path);
    if (!kind || !m || !item.post) continue;
    found.push({ plural: m[2], kind, namespaced: Boolean(m[1]) });
  }
  kindsCache = found;
  return found;
}

// One of several candidate paths for an endpoint newer than the rest of the API.
class Optional {
  // `absent(error)`: whether an error answer means the endpoint is not there.
  constructor(paths, absent) {
    this.paths = paths;
    this.absent = absent;
    this.found = null;
    this.absentUntil = 0;
  }

  // Whether it was seen missing recently (no need to ask again yet).
  get knownAbsent() {
    return !this.found && Date.now() < this.absentUntil;
  }

  // The response for `query` from the first path that routes, or null when none does.
  async fetch(query, options) {
    if (this.found) {
      try {
        return await send(`${this.found}?${query}`, options);
      } catch (e) {
        if (!(e instanceof ApiError && this.absent(e))) throw e;
        this.found = null; // gone (another control plane behind the same address)
      }
    }
    if (this.knownAbsent) return null;
    for (const path of this.paths) {
      try {
        const resp = await send(`${path}?${query}`, options);
        this.found = path;
        return resp;
      } catch (e) {
        if (!(e instanceof ApiError && this.absent(e))) throw e;
      }
    }
    this.absentUntil = Date.now() + ABSENT_FOR_MS;
    return null;
  }
}

// A stats query names nothing that could be missing: any 404 means no stats here
// (no such path, or a control plane that keeps none).
const statsEndpoint = new Optional(STATS_PATHS, (e) => e.status === 404);
// A tap names a workload or service, which may be missing: only a path the API does
// not route, or a control plane without live statistics, means no tap here.
const tapEndpoint = new Optional(TAP_PATHS, (e) => e.noSuchPath || /keeps no live statistics/.test(e.message));

export const STATS_PATH = STATS_PATHS[0];
export const TAP_PATH = TAP_PATHS[0];

// `GET /api/v1/stats?by=…&window=60s[&namespace=…]`, or null when the control plane
// has no stats endpoint.
export async function stats(by, { namespace, window = '60s', signal } = {}) {
  const query = new URLSearchParams({ by, window });
  if (namespace) query.set('namespace', namespace);
  const resp = await statsEndpoint.fetch(query.toString(), { signal });
  return resp ? resp.json() : null;
}

// Streams `GET /api/v1/tap?…` (NDJSON): calls `onEvent` with each object until the
// stream ends or `signal` aborts. False when the control plane has no tap endpoint.
export async function tap(params, onEvent, { signal } = {}) {
  const resp = await tapEndpoint.fetch(new URLSearchParams(params).toString(), {
    signal,
    accept: 'application/x-ndjson',
  });
  if (!resp) return false;
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line) onEvent(JSON.parse(line));
      }
    }
  } catch (e) {
    if (e.name !== 'AbortError') throw e;
  }
  return true;
}
