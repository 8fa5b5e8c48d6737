// The compliance page: Dome9 / CloudGuard findings over a window (GET /v1/compliance/findings): each
// remediation with its bots' outcomes, a chart of outcomes per bot, and the findings that were
// skipped or refused with the reason (which this gateway remembers since it started).

import { getJson } from './api.js';
import { COLOURS, loadCharts } from './dashboard.js';
import { formatTime, h, notice, replace, stateBadge } from './dom.js';

const WINDOWS = [['24h', '24 h'], ['7d', '7 days'], ['30d', '30 days']];

function remediationCard(row) {
  const entity = row.entity ? `${row.entity.type ? `${row.entity.type} ` : ''}${row.entity.name || row.entity.id}` : '';
  return h('li', { class: 'card finding', 'aria-label': `Finding ${row.workflowId}` },
    h('h3', {}, row.rule ?? 'Remediation', ' ', stateBadge(row.outcome ?? row.status)),
    h('dl', { class: 'facts' },
      entity ? [h('dt', {}, 'Entity'), h('dd', { class: 'wrap' }, entity)] : null,
      row.accountId ? [h('dt', {}, 'Account'), h('dd', { class: 'mono' }, `${row.accountId}${row.region ? ` · ${row.region}` : ''}`)] : null,
      h('dt', {}, 'Received'), h('dd', {}, formatTime(row.startedAt)),
      h('dt', {}, 'Finding key'), h('dd', { class: 'mono wrap' }, row.workflowId)),
    row.bots.length
      ? h('ul', { class: 'plain bots' }, row.bots.map((bot) => h('li', {},
        h('span', { class: `badge state-${bot.outcome === 'passed' ? 'good' : 'bad'}` }, bot.outcome), ' ',
        h('strong', {}, [bot.bot, ...bot.params].join(' ')), ' ', h('span', { class: 'wrap' }, bot.message))))
      : h('p', { class: 'hint' }, row.status === 'Running' ? 'Remediating…' : 'No bot outcome was recorded.'));
}

export function renderCompliance(main, route) {
  const chosen = WINDOWS.some(([value]) => value === route.query.get('window')) ? route.query.get('window') : '7d';
  const status = h('div', { class: 'messages', 'aria-live': 'polite' });
  const body = h('div', {});
  main.append(
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Compliance findings'),
      h('nav', { class: 'segmented', 'aria-label': 'Window' },
        WINDOWS.map(([value, label]) => h('a', {
          href: `#/compliance?window=${value}`, class: 'button secondary', 'aria-current': value === chosen ? 'true' : null,
        }, label)))),
    status, body);
  let stopped = false;
  let chart = null;
  (async () => {
    try {
      const [Chart, findings] = await Promise.all([loadCharts(), getJson(`/v1/compliance/findings?window=${chosen}`)]);
      if (stopped) return;
      const skipped = findings.unstarted.findings.filter((row) => row.result === 'skipped').length;
      const remediated = findings.remediations.filter((row) => row.outcome === 'Success').length;
      const canvas = h('canvas', {
        role: 'img',
        'aria-label': findings.byBot.length ? findings.byBot.map((bot) => `${bot.bot}: ${bot.passed} passed, ${bot.failed} failed`).join('; ') : 'No bot ran in this window.',
      });
      replace(body,
        h('dl', { class: 'tiles' },
          h('div', { class: 'tile' }, h('dt', {}, 'Received'), h('dd', {}, String(findings.remediations.length + findings.unstarted.findings.length))),
          h('div', { class: 'tile' }, h('dt', {}, 'Remediated'), h('dd', {}, String(remediated))),
          h('div', { class: 'tile' }, h('dt', {}, 'Skipped'), h('dd', {}, String(skipped))),
          h('div', { class: 'tile' }, h('dt', {}, 'Refused'), h('dd', {}, String(findings.unstarted.findings.length - skipped)))),
        h('section', { class: 'chart-panel', 'aria-label': 'Outcomes per bot' }, h('h2', {}, 'Outcomes per bot'), h('div', { class: 'chart-box' }, canvas)),
        h('h2', {}, `Remediations (${findings.remediations.length}${findings.more ? '+' : ''})`),
        findings.remediations.length
          ? h('ul', { class: 'cards' }, findings.remediations.map(remediationCard))
          : notice('info', 'No finding started a remediation in this window.'),
        h('h2', {}, `Skipped and refused (${findings.unstarted.findings.length})`),
        h('p', { class: 'hint' }, `These started nothing in Temporal; this gateway remembers them since ${formatTime(findings.unstarted.since)}.`),
        findings.unstarted.findings.length
          ? h('ul', { class: 'cards' }, findings.unstarted.findings.map((row) => h('li', { class: 'card finding unstarted', 'aria-label': `Finding ${row.key}` },
            h('h3', {}, row.rule, ' ', h('span', { class: 'badge state-muted' }, row.result)),
            h('p', { class: 'wrap' }, row.reason),
            h('p', { class: 'hint wrap' }, `${row.entity} · account ${row.account} · ${formatTime(row.at)}`))))
          : h('p', { class: 'hint' }, 'None.'));
      chart = new Chart(canvas, {
        type: 'bar',
        data: {
          labels: findings.byBot.map((bot) => bot.bot),
          datasets: [
            { label: 'passed', data: findings.byBot.map((bot) => bot.passed), backgroundColor: COLOURS.success },
            { label: 'failed', data: findings.byBot.map((bot) => bot.failed), backgroundColor: COLOURS.failure },
          ],
        },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false, indexAxis: 'y', plugins: { legend: { position: 'bottom' } },
          scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } },
        },
      });
    } catch (error) {
      if (!stopped) status.replaceChildren(notice('error', `The findings could not be listed: ${error.message}`));
    }
  })();
  return () => {
    stopped = true;
    chart?.destroy();
  };
}
