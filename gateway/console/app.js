// The console's shell: who is signed in, and which page the address's #fragment names. Pages are
// modules with one `render(main, route, app)` that may return a function to stop what it started.

import { canRead, forgetKey, storedKey, whenUnauthorized } from './api.js';
import { h, notice, replace } from './dom.js';
import { renderCompliance } from './compliance.js';
import { renderDashboard } from './dashboard.js';
import { renderDetail } from './detail.js';
import { renderEngines } from './engines.js';
import { renderList } from './list.js';
import { renderSchedules } from './schedules.js';
import { renderSignIn } from './signin.js';
import { renderSubmit } from './submit.js';

const main = document.getElementById('main');
const sessionArea = document.getElementById('session');

const app = {
  /** 'key' (signed in), 'anonymous' (the gateway lets callers without a key in) or 'none' (it does not). */
  mode: 'none',
  /** Why the sign-in page is showing, when it was not asked for. */
  reason: null,
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  async refreshSession() {
    if (storedKey()) {
      app.mode = 'key';
    } else {
      try {
        app.mode = (await canRead(null)) ? 'anonymous' : 'none';
      } catch (error) {
        app.mode = 'none';
        app.reason = error.message;
      }
    }
    drawSession();
  },
};

function drawSession() {
  const signOut = () => {
    forgetKey();
    app.reason = null;
    app.refreshSession().then(() => app.go(app.mode === 'none' ? '#/sign-in' : '#/'));
  };
  if (app.mode === 'key') {
    replace(sessionArea, h('span', {}, 'Signed in with an API key'), h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
  } else if (app.mode === 'anonymous') {
    replace(sessionArea, h('span', {}, 'Not signed in (anonymous access)'), h('a', { href: '#/sign-in' }, 'Sign in'));
  } else {
    replace(sessionArea, h('a', { href: '#/sign-in' }, 'Sign in'));
  }
}

/** '#/investigations/abc?x=1' → { path: ['investigations', 'abc'], query: URLSearchParams } */
function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path: path.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

let stopPage = null;

async function route() {
  if (typeof stopPage === 'function') stopPage();
  stopPage = null;
  const current = parseHash();
  const [first, second] = current.path;
  for (const link of document.querySelectorAll('[data-nav]')) {
    const active = (link.dataset.nav === 'list' && (!first || first === 'investigations')) || link.dataset.nav === first;
    if (active) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (first !== 'sign-in' && app.mode === 'none') {
    app.go('#/sign-in');
    return;
  }
  replace(main);
  try {
    if (first === 'sign-in') stopPage = renderSignIn(main, current, app);
    else if (first === 'new') stopPage = renderSubmit(main, current, app);
    else if (first === 'dashboard') stopPage = renderDashboard(main, current, app);
    else if (first === 'engines') stopPage = renderEngines(main, current, app);
    else if (first === 'schedules') stopPage = renderSchedules(main, current, app);
    else if (first === 'compliance') stopPage = renderCompliance(main, current, app);
    else if (first === 'investigations' && second) stopPage = renderDetail(main, second, app);
    else stopPage = renderList(main, current, app);
  } catch (error) {
    replace(main, h('h1', { tabindex: '-1' }, 'Something went wrong'), notice('error', error.message));
  }
  // Moving focus to the new page's heading, and naming the tab after it, tells keyboard and
  // screen-reader users the page changed.
  const heading = main.querySelector('h1');
  if (heading) {
    document.title = `${heading.textContent} · Docket`;
    heading.focus({ preventScroll: false });
  }
}

whenUnauthorized((error) => {
  forgetKey();
  app.reason = `Docket refused the key: ${error.message}`;
  app.refreshSession().then(() => app.go('#/sign-in'));
});

document.querySelector('.skip').addEventListener('click', (event) => {
  // The #fragment is the router's: move focus to the content without navigating.
  event.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', route);
app.refreshSession().then(route);
