// The GUI's entry point: the login form, the navigation and a hash router
// (`#/services/default/echo`) that gives each view a fresh container, an abort signal
// and timers, all ended when the user navigates away.

import * as api from './api.js';
import { errorBox, h } from './dom.js';
import { graphView } from './graph.js';
import {
  meshesView, policiesView, policyView, serviceView, servicesView, workloadView, workloadsView,
} from './resources.js';
import { tapView } from './tap.js';

// Section → [list view, item view].
const VIEWS = {
  meshes: [meshesView],
  services: [servicesView, serviceView],
  workloads: [workloadsView, workloadView],
  policies: [policiesView, policyView],
  graph: [graphView],
  tap: [tapView, tapView],
};

const DEFAULT_SECTION = 'services';

const login = document.getElementById('login');
const loginForm = document.getElementById('login-form');
const loginError = document.getElementById('login-error');
const tokenInput = document.getElementById('token');
const shell = document.getElementById('shell');
const view = document.getElementById('view');
const who = document.getElementById('who');

let current = null;

function showLogin(message) {
  current?.stop();
  current = null;
  shell.hidden = true;
  login.hidden = false;
  loginError.hidden = !message;
  loginError.textContent = message ?? '';
  tokenInput.focus();
}

function logout(message) {
  api.clearToken();
  view.replaceChildren();
  showLogin(message);
}

// What a view gets: its container, a signal aborted when it is left, and timers that
// stop then too (each runs once at once, then every `ms`, never two at a time).
function context(el) {
  const controller = new AbortController();
  const timers = [];
  return {
    el,
    signal: controller.signal,
    every(ms, fn) {
      let timer = null;
      const tick = async () => {
        if (controller.signal.aborted) return;
        try {
          await fn();
        } catch (e) {
          fail(e, el);
        }
        if (!controller.signal.aborted) timer = setTimeout(tick, ms);
        timers[index] = timer;
      };
      const index = timers.push(null) - 1;
      tick();
    },
    stop() {
      controller.abort();
      for (const t of timers) clearTimeout(t);
    },
  };
}

function fail(error, el) {
  if (error?.name === 'AbortError') return;
  if (error instanceof api.ApiError && error.status === 401) {
    logout(`The control plane refused the token: ${error.message}`);
    return;
  }
  el.append(errorBox(error));
}

async function route() {
  if (!api.token()) {
    showLogin();
    return;
  }
  login.hidden = true;
  shell.hidden = false;
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const section = VIEWS[parts[0]] ? parts[0] : DEFAULT_SECTION;
  const args = VIEWS[parts[0]] ? parts.slice(1) : [];
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.section === section);
  }
  current?.stop();
  const el = h('div', { class: 'view', dataset: { section } });
  view.replaceChildren(el);
  current = context(el);
  const [listView, itemView] = VIEWS[section];
  const show = args.length && itemView ? itemView : listView;
  try {
    await show(current, args);
  } catch (e) {
    fail(e, el);
  }
}

loginForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const value = tokenInput.value.trim();
  if (!value) return;
  const button = loginForm.querySelector('button');
  button.disabled = true;
  loginError.hidden = true;
  try {
    await api.check(value);
    api.setToken(value);
    tokenInput.value = '';
    who.textContent = api.roleOf(value);
    if (!location.hash || location.hash === '#/') location.hash = `#/${DEFAULT_SECTION}`;
    await route();
  } catch (e) {
    loginError.hidden = false;
    loginError.textContent = String(e);
  } finally {
    button.disabled = false;
  }
});

document.getElementById('logout').addEventListener('click', () => logout());
window.addEventListener('hashchange', route);
who.textContent = api.roleOf(api.token());
route();
