// The engines page: each engine's manifest facts and the image it runs now (GET /v1/engines), its
// newest jobs over the last 30 days (GET /v1/stats), and the manifests that were skipped and why.

import { getJson } from './api.js';
import { formatBytes, formatTime, h, notice, replace, stateBadge } from './dom.js';

const BUILD = 'npm run engines:build --';

function seconds(ms) {
  return ms === null || ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(1)} s`;
}

function imageFacts(engine) {
  if (engine.imagePresent === true) {
    return [h('dt', {}, 'Image'), h('dd', {}, h('span', { class: 'badge state-good' }, 'present'), ' ', h('code', { class: 'wrap' }, engine.image)),
      h('dt', {}, 'Image ID'), h('dd', { class: 'mono wrap' }, engine.imageId)];
  }
  if (engine.imagePresent === false) {
    return [h('dt', {}, 'Image'), h('dd', {}, h('span', { class: 'badge state-bad' }, 'missing'), ' ', h('code', { class: 'wrap' }, engine.image),
      h('p', { class: 'hint' }, 'Build it on the engine host with ', h('code', {}, `${BUILD} ${engine.name}`)))];
  }
  return [h('dt', {}, 'Image'), h('dd', {}, h('span', { class: 'badge state-muted' }, 'unknown'), ' ', h('code', { class: 'wrap' }, engine.image),
    engine.imageError ? h('p', { class: 'hint' }, engine.imageError) : null)];
}

function recentJobs(stats) {
  if (!stats) return h('p', { class: 'hint' }, 'Recent jobs could not be read.');
  if (!stats.recent.length) return h('p', { class: 'hint' }, 'No jobs in the last 30 days.');
  const outcomes = Object.entries(stats.outcomes).filter(([, n]) => n > 0).map(([outcome, n]) => `${n} ${outcome}`).join(', ');
  return h('div', {},
    h('p', {}, `Last 30 days: ${outcomes}${stats.cached ? ` (${stats.cached} from the cache)` : ''}; run time median ${seconds(stats.medianMs)}, p95 ${seconds(stats.p95Ms)}.`),
    h('ul', { class: 'plain jobs' }, stats.recent.map((job) => h('li', {},
      stateBadge(job.status), ' ',
      h('a', { class: 'mono', href: `#/investigations/${encodeURIComponent(job.workflowId)}` }, job.workflowId), ' ',
      h('span', { class: 'hint' }, `${formatTime(job.finishedAt)}${job.cached ? ' · cached' : job.durationMs !== null ? ` · ${seconds(job.durationMs)}` : ''}`),
      job.summary ? h('span', { class: 'wrap hint' }, ` · ${job.summary}`) : null))));
}

function engineCard(engine, stats) {
  return h('li', { class: 'card engine', 'aria-label': engine.name },
    h('h3', {}, engine.name, ' ', h('span', { class: 'badge state-muted' }, engine.kind)),
    engine.description ? h('p', {}, engine.description) : null,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Accepts'), h('dd', {}, engine.accepts.join(', ') || '—'),
      h('dt', {}, 'Protocol'), h('dd', {}, engine.protocol),
      imageFacts(engine),
      h('dt', {}, 'Concurrency'), h('dd', {}, `${engine.concurrency} at once per worker`),
      h('dt', {}, 'Timeout'), h('dd', {}, seconds(engine.timeout)),
      h('dt', {}, 'Size limit'), h('dd', {}, formatBytes(engine.sizelimit))),
    h('h4', {}, 'Recent jobs'),
    recentJobs(stats));
}

export function renderEngines(main) {
  const status = h('div', { class: 'messages', 'aria-live': 'polite' });
  const body = h('div', {});
  main.append(h('h1', { tabindex: '-1' }, 'Engines'), status, body);
  let stopped = false;
  (async () => {
    try {
      const [list, stats] = await Promise.all([
        getJson('/v1/engines'),
        // The jobs are a help, not the page: without them the engines still show.
        getJson('/v1/stats?window=30d').catch((error) => ({ failed: error })),
      ]);
      if (stopped) return;
      const byEngine = new Map((stats.engines?.jobs ?? []).map((job) => [job.engine, job]));
      const missing = list.engines.filter((engine) => engine.imagePresent === false).length;
      replace(body,
        stats.failed ? notice('error', `Recent jobs could not be read: ${stats.failed.message}`) : null,
        missing ? notice('error', `${missing} engine${missing === 1 ? ' has' : 's have'} no image: their jobs fail until it is built (${BUILD} <name>).`) : null,
        h('h2', {}, `Loaded (${list.engines.length})`),
        list.engines.length
          ? h('ul', { class: 'cards' }, list.engines.map((engine) => engineCard(engine, stats.failed ? null : byEngine.get(engine.name) ?? { recent: [], outcomes: {} })))
          : notice('info', 'No engine is loaded: add a manifest under the engines folder and reload Docket.'),
        h('h2', {}, `Skipped manifests (${list.errors.length})`),
        list.errors.length
          ? h('ul', { class: 'plain skipped' }, list.errors.map((error) => h('li', { class: 'wrap' }, error)))
          : h('p', { class: 'hint' }, 'Every manifest loaded.'));
    } catch (error) {
      if (!stopped) status.replaceChildren(notice('error', `The engines could not be listed: ${error.message}`));
    }
  })();
  return () => {
    stopped = true;
  };
}
