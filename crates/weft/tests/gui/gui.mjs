// Drives the control plane's GUI in Chromium, as an operator would, for
// crates/weft/tests/gui.rs (which starts the mesh and runs this script):
//
//   node gui.mjs [--docs-images DIR]
//
// Environment: WEFT_GUI_URL (https://127.0.0.1:PORT), WEFT_GUI_TOKEN (an admin token),
// WEFT_GUI_REVOKED_TOKEN (an operator token named gui-revoked, revoked),
// WEFT_CHROMIUM (the browser), WEFT_GUI_ARTIFACTS (where screenshots go),
// WEFT_GUI_SERVICE (namespace/name of a service with an endpoint), WEFT_GUI_ENDPOINT
// (its workload), WEFT_GUI_ROUTE (a route attached to it), WEFT_GUI_CONDITION (a
// condition reason the route's status has).
//
// It logs in (an unknown and a revoked token first: the API's refusals are shown), opens the service and
// finds its endpoint and the route's condition, the workloads with their proxies, the
// routes and policies, the live graph with an edge and a live tap row, logs out, and
// fails on any console error or uncaught exception the steps did not expect. Last, it
// answers the stats and tap paths with 404 as a control plane without them would, and
// the GUI must show "no data yet" there. With --docs-images it also writes
// gui-login.png, gui-service.png and gui-graph.png for docs/images/.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const base = env('WEFT_GUI_URL');
const token = env('WEFT_GUI_TOKEN');
const revoked = env('WEFT_GUI_REVOKED_TOKEN');
const artifacts = env('WEFT_GUI_ARTIFACTS');
const [serviceNs, serviceName] = env('WEFT_GUI_SERVICE').split('/');
const endpoint = env('WEFT_GUI_ENDPOINT');
const route = env('WEFT_GUI_ROUTE');
const condition = env('WEFT_GUI_CONDITION');
const docsFlag = process.argv.indexOf('--docs-images');
const docs = docsFlag >= 0 ? process.argv[docsFlag + 1] : null;
const TIMEOUT = 20000;

mkdirSync(artifacts, { recursive: true });
if (docs) mkdirSync(docs, { recursive: true });

const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);

// Console errors, with whether a step said to expect them.
const problems = [];
let expected = [];
const expect = (status, pathPart) => expected.push({ status, pathPart });

const browser = await chromium.launch({
  executablePath: process.env.WEFT_CHROMIUM || '/usr/bin/chromium',
  // Root (CI) cannot use Chromium's sandbox; the page is our own, on loopback.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
let failed = false;
try {
  // The control plane's certificate comes from the mesh CA made for this test.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`uncaught exception: ${e.stack ?? e}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location()?.url ?? '';
    const ok = expected.some((x) => msg.text().includes(`status of ${x.status}`) && url.includes(x.pathPart));
    if (!ok) problems.push(`console error: ${msg.text()} (${url})`);
  });
  const api = (path) => context.request.get(`${base}${path}`, { headers: { Authorization: `Bearer ${token}` }, failOnStatusCode: false, timeout: 5000 });
  const waitText = (selector, text, timeout = TIMEOUT) =>
    page.waitForFunction(
      ([sel, t]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(t)),
      [selector, text],
      { timeout },
    ).catch(async () => {
      const seen = await page.locator(selector).allTextContents().catch(() => []);
      throw new Error(`no ${selector} with ${JSON.stringify(text)} within ${timeout} ms; saw: ${JSON.stringify(seen).slice(0, 2000)}`);
    });
  const shot = async (name, docsName, options = {}) => {
    await page.mouse.move(640, 790); // off the links: no hover colour in the picture
    const path = join(artifacts, `${name}.png`);
    await page.screenshot({ path, ...options });
    console.log(`screenshot: ${path}`);
    if (docs && docsName) {
      await page.screenshot({ path: join(docs, docsName), ...options });
      console.log(`docs image: ${join(docs, docsName)}`);
    }
  };

  step('open /gui: the login form');
  const shell = await page.goto(`${base}/gui/`);
  if (!shell.headers()['content-security-policy']?.startsWith("default-src 'self'")) {
    throw new Error(`no strict CSP on /gui/: ${JSON.stringify(shell.headers())}`);
  }
  await page.locator('#login-form').waitFor({ timeout: TIMEOUT });
  await shot('login');

  step('an unknown token, then a revoked one: the API\'s 403 and 401 are shown, nothing is kept');
  expect(403, '/v1/meshes');
  expect(401, '/v1/meshes');
  await page.fill('#token', 'weft-admin-not-a-real-token');
  await page.click('#login-form button[type=submit]');
  await waitText('#login-error', 'weft token admin');
  const refusal = await page.textContent('#login-error');
  if (!/^40[13] (Forbidden|Unauthorized): /.test(refusal)) throw new Error(`the refusal is not the API's: ${refusal}`);
  await shot('login-refused', 'gui-login.png');
  await page.fill('#token', revoked);
  await page.click('#login-form button[type=submit]');
  await waitText('#login-error', 'was revoked');
  const revokedRefusal = await page.textContent('#login-error');
  if (!revokedRefusal.startsWith('401 Unauthorized: the operator token "gui-revoked" was revoked')) {
    throw new Error(`the revoked token's refusal is not the API's 401: ${revokedRefusal}`);
  }
  if (await page.evaluate(() => sessionStorage.length) !== 0) throw new Error('a refused token was kept');
  expected = [];

  step('the admin token: logged in, kept in sessionStorage only');
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.locator('#shell nav').waitFor({ timeout: TIMEOUT });
  const storage = await page.evaluate(() => ({ session: Object.values(sessionStorage), local: localStorage.length, cookie: document.cookie }));
  if (!storage.session.includes(token) || storage.local !== 0 || storage.cookie !== '') {
    throw new Error(`the token is not kept in sessionStorage alone: ${JSON.stringify({ ...storage, session: storage.session.length })}`);
  }

  step(`services: ${serviceName} is listed; its page shows the endpoint and the route's condition`);
  await waitText('.view[data-section=services] table.grid a', serviceName);
  await page.click(`.view[data-section=services] table.grid a[href="#/services/${serviceNs}/${serviceName}"]`);
  await waitText('.endpoints table.grid td', endpoint);
  await waitText('.endpoints table.grid td', 'Healthy');
  await waitText('.attached h3', route);
  await waitText('.attached .conditions td', condition);
  await waitText('.card h2', 'Ports');
  await waitText('.card h2', 'Conditions');
  await shot('service');

  writeFileSync(join(artifacts, 'proxies.json'), await (await api('/v1/proxies')).text());
  writeFileSync(join(artifacts, 'workloads.json'), await (await api('/v1/workloads')).text());
  step('workloads: the endpoint with its proxy, in sync');
  await page.click('nav a[data-section=workloads]');
  await waitText('.view[data-section=workloads] table.grid td', endpoint);
  await waitText('.view[data-section=workloads] table.grid td', 'in sync');
  await shot('workloads');
  await page.click(`.view[data-section=workloads] a[href="#/workloads/${serviceNs}/${endpoint}"]`);
  await waitText('.view[data-section=workloads] .card h2', 'Proxy');
  await waitText('.view[data-section=workloads] table.grid td', 'TrustBundle');
  await waitText('.view[data-section=workloads] .facts dt', 'Certificate');

  step('routes and policies: every kind the API lists, the route attached with its conditions');
  await page.click('nav a[data-section=policies]');
  await waitText('.view[data-section=policies] table.grid td', route);
  await waitText('.view[data-section=policies] table.grid td', `Service ${serviceName}`);
  await shot('policies');
  const listed = await page.locator('.view[data-section=policies]').textContent();
  for (const kind of ['HTTPRoute', 'GRPCRoute', 'TCPRoute', 'BackendPolicy', 'TrafficPermission', 'RateLimit', 'FaultInjection']) {
    if (!listed.includes(kind)) throw new Error(`${kind} is not among the routes and policies: ${listed}`);
  }

  step('meshes');
  await page.click('nav a[data-section=meshes]');
  await page.locator('.view[data-section=meshes] .title h1').waitFor({ timeout: TIMEOUT });

  step('graph: an edge to the endpoint, marked mutual TLS');
  await page.click('nav a[data-section=graph]');
  await page.waitForFunction(() => document.querySelectorAll('svg.graph-svg g.edge').length > 0, null, { timeout: 45000 })
    .catch(async () => {
      throw new Error(`no edge in the graph within 45 s: ${await page.locator('.view').textContent()}`);
    });
  const edges = await page.locator('svg.graph-svg g.edge').evaluateAll((els) => els.map((e) => ({ from: e.dataset.from, to: e.dataset.to, security: e.dataset.security, text: e.textContent })));
  console.log(`graph edges: ${JSON.stringify(edges)}`);
  if (!edges.some((e) => e.security === 'mutual_tls' && e.text.includes('mTLS'))) throw new Error('no edge marked mutual TLS');
  if (!edges.some((e) => e.to.includes(endpoint))) throw new Error(`no edge to ${endpoint}`);
  await shot('graph', 'gui-graph.png');

  step('the service page again, now with its golden metrics');
  await page.goto(`${base}/gui/#/services/${serviceNs}/${serviceName}`);
  await waitText('.endpoints table.grid td', endpoint);
  await waitText('.metrics .golden .label', 'success rate', 30000);
  await waitText('.metrics table.grid td', 'mTLS');
  await shot('service-metrics', 'gui-service.png', { fullPage: true });

  step('tap: a live row from the endpoint, its headers, stop');
  await page.goto(`${base}/gui/#/tap/workload/${encodeURIComponent(`${serviceNs}/${endpoint}`)}`);
  await page.locator('.tap-form select[name=target]').waitFor({ timeout: TIMEOUT });
  const target = await page.inputValue('.tap-form select[name=target]');
  if (target !== `workload=${serviceNs}/${endpoint}`) throw new Error(`the tap target is ${target}`);
  await page.click('.tap-form button[type=submit]');
  await page.locator('tbody tr.tap-row').first().waitFor({ timeout: 30000 });
  const row = await page.locator('tbody tr.tap-row').first().textContent();
  console.log(`tap row: ${row}`);
  if (!row.includes(endpoint)) throw new Error(`the tap row is not about ${endpoint}: ${row}`);
  await page.locator('tbody tr.tap-row').first().click();
  await waitText('.tap-detail h3', 'Request headers');
  await shot('tap');
  await page.click('.tap-form button:has-text("Stop")');
  await waitText('.tap-state', 'stopped');

  step('a control plane without the stats and tap endpoints: "no data yet", no script error');
  // As an older control plane answers: its fallback's 404 for both paths of each.
  await page.route(/\/(api\/)?v1\/(stats|tap)(\?|$)/, (r) => r.fulfill({
    status: 404,
    contentType: 'application/json',
    body: JSON.stringify({ error: { code: 404, reason: 'NotFound', message: `no such path ${new URL(r.request().url()).pathname}; see /openapi.json for the API`, details: [] } }),
  }));
  expect(404, '/stats');
  expect(404, '/tap');
  await page.goto(`${base}/gui/#/graph`);
  await page.reload(); // a fresh page: nothing remembered about the endpoints
  await waitText('.view[data-section=graph] .notice', 'No data yet');
  await page.goto(`${base}/gui/#/services/${serviceNs}/${serviceName}`);
  await waitText('.metrics .notice', 'No data yet');
  await page.goto(`${base}/gui/#/tap/workload/${encodeURIComponent(`${serviceNs}/${endpoint}`)}`);
  await page.locator('.tap-form select[name=target]').waitFor({ timeout: TIMEOUT });
  await page.click('.tap-form button[type=submit]');
  await waitText('.tap-state .notice', 'No data yet');
  await page.unroute(/\/(api\/)?v1\/(stats|tap)(\?|$)/);
  expected = [];

  step('log out: the token is gone');
  await page.click('#logout');
  await page.locator('#login-form').waitFor({ timeout: TIMEOUT });
  if (await page.evaluate(() => sessionStorage.length) !== 0) throw new Error('the token outlived the logout');

  if (problems.length) throw new Error(`the page logged errors:\n${problems.join('\n')}`);
  step('passed');
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack ?? e}`);
  if (problems.length) console.error(`console:\n${problems.join('\n')}`);
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) {
      const path = join(artifacts, 'failure.png');
      await pages[0].screenshot({ path, fullPage: true });
      console.error(`screenshot: ${path}`);
    }
  } catch {
    // The browser is gone: nothing to show.
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
