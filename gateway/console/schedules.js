// The schedules page: what Temporal runs from schedules/*.yaml (GET /v1/schedules), their next and
// latest runs, and pause, unpause and run-now for keys with the respond role (the gateway refuses
// the others, and the refusal says which role is needed).

import { getJson, postJson } from './api.js';
import { formatTime, h, notice, replace, stateBadge } from './dom.js';

const REFRESH_MS = 10_000;

function every(schedule) {
  if (schedule.cron) return `cron ${schedule.cron}`;
  const ms = schedule.intervalMs;
  if (!ms) return '';
  if (ms % 3_600_000 === 0) return `every ${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `every ${ms / 60_000} min`;
  return `every ${Math.round(ms / 1000)} s`;
}

/** Temporal's RUNNING, TIMED_OUT… as the console's badges name them (Running, TimedOut). */
function runState(run) {
  return run.outcome ?? run.status.toLowerCase().replace(/(^|_)([a-z])/g, (_match, _sep, letter) => letter.toUpperCase());
}

/** Runs that start investigations open in the console; an engine run (`run`) has no page there. */
function runLink(schedule, run) {
  return schedule.action !== 'run'
    ? h('a', { class: 'mono', href: `#/investigations/${encodeURIComponent(run.workflowId)}` }, run.workflowId)
    : h('span', { class: 'mono' }, run.workflowId);
}

export function renderSchedules(main) {
  const status = h('div', { class: 'messages', 'aria-live': 'polite' });
  const body = h('div', {});
  main.append(h('h1', { tabindex: '-1' }, 'Schedules'), status, body);
  let stopped = false;
  let timer = null;

  const act = (schedule, action, label) => async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    status.replaceChildren(notice('info', `${label} ${schedule.id}…`));
    try {
      await postJson(`/v1/schedules/${encodeURIComponent(schedule.id)}/${action}`, {});
      status.replaceChildren(notice('info', `${schedule.id}: ${action === 'trigger' ? 'run started' : `${action}d`}.`));
      clearTimeout(timer);
      await load();
    } catch (error) {
      status.replaceChildren(notice('error', `Could not ${action} ${schedule.id}: ${error.message}`));
      button.disabled = false;
    }
  };

  const card = (schedule) => h('li', { class: `card schedule${schedule.paused ? ' paused' : ''}`, 'aria-label': schedule.id },
    h('h3', {}, schedule.id, ' ', schedule.paused ? h('span', { class: 'badge state-muted' }, 'paused') : h('span', { class: 'badge state-good' }, 'active')),
    schedule.description ? h('p', {}, schedule.description) : null,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Does'), h('dd', {}, schedule.action === 'run' ? `runs engine ${schedule.engine ?? ''}` : 'starts an investigation'),
      h('dt', {}, 'When'), h('dd', { class: 'mono' }, every(schedule)),
      schedule.file ? [h('dt', {}, 'File'), h('dd', { class: 'mono wrap' }, schedule.file)] : null,
      schedule.note ? [h('dt', {}, 'Note'), h('dd', { class: 'wrap' }, schedule.note)] : null,
      h('dt', {}, 'Next runs'), h('dd', {}, schedule.paused ? 'none while paused' : schedule.nextRuns.slice(0, 3).map(formatTime).join(' · ') || '—'),
      h('dt', {}, 'Runs taken'), h('dd', {}, String(schedule.actionsTaken))),
    h('h4', {}, 'Recent runs'),
    schedule.recentRuns.length
      ? h('ul', { class: 'plain' }, schedule.recentRuns.map((run) => h('li', {},
        stateBadge(runState(run)), ' ', runLink(schedule, run), ' ', h('span', { class: 'hint' }, `started ${formatTime(run.startedAt)}`))))
      : h('p', { class: 'hint' }, 'No runs yet.'),
    h('div', { class: 'actions', role: 'group', 'aria-label': `Control ${schedule.id}` },
      schedule.paused
        ? h('button', { type: 'button', class: 'secondary', onclick: act(schedule, 'unpause', 'Unpausing') }, 'Unpause')
        : h('button', { type: 'button', class: 'secondary', onclick: act(schedule, 'pause', 'Pausing') }, 'Pause'),
      h('button', { type: 'button', onclick: act(schedule, 'trigger', 'Starting') }, 'Run now')));

  const load = async () => {
    try {
      const { schedules } = await getJson('/v1/schedules');
      if (stopped) return;
      replace(body, schedules.length
        ? h('ul', { class: 'cards' }, schedules.map(card))
        : notice('info', 'No schedules: add a file under schedules/ and restart the main worker (or npm run schedules -- reconcile).'));
    } catch (error) {
      if (!stopped) status.replaceChildren(notice('error', `The schedules could not be listed: ${error.message}`));
    }
    if (!stopped) timer = setTimeout(load, REFRESH_MS);
  };
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
