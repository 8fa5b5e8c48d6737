// The dashboard: what happened over a window (GET /v1/stats), drawn with Chart.js. The library is
// served by the gateway (/console/vendor/) and loaded only when this page opens. Each chart's canvas
// carries a text summary for screen readers, since a canvas itself says nothing.

import { getJson } from './api.js';
import { h, notice, replace } from './dom.js';

const WINDOWS = [['24h', '24 h'], ['7d', '7 days'], ['30d', '30 days']];
const REFRESH_MS = 30_000;

// The badge colours' strong tones (style.css), so a verdict looks the same in the list and here.
export const COLOURS = {
  malicious: '#a4262c', suspicious: '#c27c0e', safe: '#1a6b34', info: '#1f4f8f', none: '#8c959f',
  success: '#1a6b34', failure: '#a4262c', timeout: '#c27c0e', error: '#6e3fa3',
  median: '#1f4f8f', p95: '#c27c0e', waiting: '#c27c0e', failures: '#a4262c',
};
const VERDICTS = ['malicious', 'suspicious', 'safe', 'info', 'none'];
const OUTCOMES = ['success', 'failure', 'timeout', 'error'];

let chartLibrary = null;
/** Chart.js, loaded once; its UMD build defines globalThis.Chart. */
export function loadCharts() {
  chartLibrary ??= import('./vendor/chart.umd.min.js').then(() => {
    if (!globalThis.Chart) throw new Error('the chart library did not load');
    return globalThis.Chart;
  });
  return chartLibrary;
}

function bucketLabel(iso, bucket) {
  const date = new Date(iso);
  return bucket === 'hour'
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : date.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

function seconds(ms) {
  return ms === null || ms === undefined ? null : Math.round(ms / 100) / 10;
}

function ageText(fromIso) {
  const minutes = Math.max(0, Math.round((Date.now() - new Date(fromIso).getTime()) / 60_000));
  if (minutes < 60) return `${minutes} min`;
  if (minutes < 48 * 60) return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  return `${Math.floor(minutes / 1440)} days`;
}

/** A titled chart panel: the canvas (with its text summary) and what the numbers left out. */
function panel(title, summary, notes = []) {
  const canvas = h('canvas', { role: 'img', 'aria-label': summary });
  const element = h('section', { class: 'chart-panel', 'aria-label': title },
    h('h2', {}, title),
    h('div', { class: 'chart-box' }, canvas),
    notes.filter(Boolean).map((text) => h('p', { class: 'hint' }, text)));
  return { element, canvas };
}

function baseOptions(extra = {}) {
  return {
    // Drawn at once: an animation would only delay what the page shows (and its screenshots).
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { legend: { position: 'bottom' } },
    ...extra,
  };
}

function stackedScales(horizontal = false) {
  const counts = { stacked: true, beginAtZero: true, ticks: { precision: 0 } };
  const labels = { stacked: true };
  return horizontal ? { x: counts, y: labels } : { x: labels, y: counts };
}

export function renderDashboard(main, route, app) {
  const chosen = WINDOWS.some(([value]) => value === route.query.get('window')) ? route.query.get('window') : '7d';
  const status = h('div', { class: 'messages', 'aria-live': 'polite' });
  const tiles = h('dl', { class: 'tiles' });
  const charts = h('div', { class: 'charts' });
  main.append(
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Dashboard'),
      h('nav', { class: 'segmented', 'aria-label': 'Window' },
        WINDOWS.map(([value, label]) => h('a', {
          href: `#/dashboard?window=${value}`, class: 'button secondary', 'aria-current': value === chosen ? 'true' : null,
        }, label)))),
    status, tiles, charts,
  );

  let drawn = [];
  let timer = null;
  let stopped = false;
  const clear = () => {
    for (const chart of drawn) chart.destroy();
    drawn = [];
  };

  const load = async () => {
    try {
      const [Chart, stats] = await Promise.all([loadCharts(), getJson(`/v1/stats?window=${chosen}`)]);
      if (stopped) return;
      status.replaceChildren();
      clear();
      draw(Chart, stats);
    } catch (error) {
      if (stopped) return;
      status.replaceChildren(notice('error', `The dashboard could not be loaded: ${error.message}`));
    }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  };

  const draw = (Chart, stats) => {
    const chart = (canvas, config) => drawn.push(new Chart(canvas, config));
    const { investigations, engines, approvals, failures } = stats;
    const jobsTotal = engines.jobs.reduce((sum, job) => sum + OUTCOMES.reduce((n, outcome) => n + job.outcomes[outcome], 0), 0);
    const failuresTotal = failures.reduce((sum, row) => sum + row.count, 0);
    const tile = (label, value, href) => h('div', { class: 'tile' }, h('dt', {}, label), h('dd', {}, href ? h('a', { href }, String(value)) : String(value)));
    replace(tiles,
      tile('Investigations started', investigations.total, '#/'),
      tile('Running now', investigations.byStatus.Running ?? 0, '#/?status=Running'),
      tile('Engine jobs', jobsTotal, '#/engines'),
      tile('Approvals waiting', approvals.waiting.length),
      tile('Failures', failuresTotal));

    const perBucket = panel('Investigations by verdict',
      `Investigations started per ${stats.bucket}: ${VERDICTS.map((verdict) => `${investigations.buckets.reduce((n, b) => n + b.counts[verdict], 0)} ${verdict}`).join(', ')}.`,
      [investigations.counted < investigations.total ? `Counted the newest ${investigations.counted} of ${investigations.total} investigations.` : null]);
    const byEngine = panel('Engine jobs by outcome',
      engines.jobs.length
        ? engines.jobs.map((job) => `${job.engine}: ${OUTCOMES.map((outcome) => `${job.outcomes[outcome]} ${outcome}`).join(', ')}`).join('; ')
        : 'No engine jobs finished in this window.',
      [engines.reportsLeftOut ? `${engines.reportsLeftOut} closed runs were not read (only the newest ${engines.reportsRead} are).` : null]);
    const runTimes = panel('Engine run time (seconds)',
      engines.jobs.map((job) => `${job.engine}: median ${seconds(job.medianMs) ?? 'n/a'} s, p95 ${seconds(job.p95Ms) ?? 'n/a'} s`).join('; ') || 'No engine ran a container in this window.',
      ['Results reused from the cache, and jobs that never started a container (errors), are left out.']);
    const waiting = panel('Approvals waiting (hours)',
      approvals.waiting.length
        ? approvals.waiting.map((item) => `${item.responder} on ${item.subject}, waiting up to ${ageText(item.since)}`).join('; ')
        : 'No approval is waiting.',
      ["Age counts from the investigation's start.",
        approvals.unanswered ? `${approvals.unanswered} running workflows did not answer (is the main worker running?).` : null]);
    const failed = panel('Failures by class',
      failures.map((row) => `${row.class}: ${row.count}`).join(', '));
    replace(charts, perBucket.element, byEngine.element, runTimes.element, waiting.element, failed.element);

    chart(perBucket.canvas, {
      type: 'bar',
      data: {
        labels: investigations.buckets.map((b) => bucketLabel(b.start, stats.bucket)),
        datasets: VERDICTS.map((verdict) => ({ label: verdict, data: investigations.buckets.map((b) => b.counts[verdict]), backgroundColor: COLOURS[verdict] })),
      },
      options: baseOptions({ scales: stackedScales() }),
    });
    chart(byEngine.canvas, {
      type: 'bar',
      data: {
        labels: engines.jobs.map((job) => job.engine),
        datasets: OUTCOMES.map((outcome) => ({ label: outcome, data: engines.jobs.map((job) => job.outcomes[outcome]), backgroundColor: COLOURS[outcome] })),
      },
      options: baseOptions({ indexAxis: 'y', scales: stackedScales(true) }),
    });
    chart(runTimes.canvas, {
      type: 'bar',
      data: {
        labels: engines.jobs.map((job) => job.engine),
        datasets: [
          { label: 'median', data: engines.jobs.map((job) => seconds(job.medianMs)), backgroundColor: COLOURS.median },
          { label: 'p95', data: engines.jobs.map((job) => seconds(job.p95Ms)), backgroundColor: COLOURS.p95 },
        ],
      },
      options: baseOptions({ indexAxis: 'y', scales: { x: { beginAtZero: true, title: { display: true, text: 'seconds' } } } }),
    });
    chart(waiting.canvas, {
      type: 'bar',
      data: {
        labels: approvals.waiting.map((item) => `${item.responder} · ${item.subject.length > 28 ? `${item.subject.slice(0, 27)}…` : item.subject}`),
        datasets: [{
          label: 'hours waiting',
          data: approvals.waiting.map((item) => Math.round((Date.now() - new Date(item.since).getTime()) / 36_000) / 100),
          backgroundColor: COLOURS.waiting,
        }],
      },
      options: baseOptions({
        indexAxis: 'y',
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, title: { display: true, text: 'hours' } } },
        // A bar opens the investigation it waits in, where it can be approved or rejected.
        onClick: (_event, elements) => {
          const item = approvals.waiting[elements[0]?.index];
          if (item && item.workflowType === 'investigation') app.go(`#/investigations/${encodeURIComponent(item.workflowId)}`);
        },
      }),
    });
    if (approvals.waiting.length) {
      waiting.element.append(h('ul', { class: 'plain' }, approvals.waiting.map((item) => h('li', {},
        item.workflowType === 'investigation'
          ? h('a', { href: `#/investigations/${encodeURIComponent(item.workflowId)}` }, `${item.responder} on ${item.subject}`)
          : `${item.responder} on ${item.subject} (compliance ${item.workflowId})`,
        ` — waiting up to ${ageText(item.since)}`))));
    }
    chart(failed.canvas, {
      type: 'bar',
      data: { labels: failures.map((row) => row.class), datasets: [{ label: 'failures', data: failures.map((row) => row.count), backgroundColor: COLOURS.failures }] },
      options: baseOptions({ indexAxis: 'y', plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }),
    });
  };

  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    clear();
  };
}
