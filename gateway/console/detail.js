// One investigation: its state, verdicts, engine reports with their results, and its responses with
// approve and reject while they wait. While it runs, the page asks the gateway again every
// POLL_MS; the gateway answers from the workflow's live status query.

import { getBlob, getJson, postJson } from './api.js';
import {
  field, formatBytes, formatDuration, formatTime, h, levelBadge, notice, replace, stateBadge, taxonomyBadge,
} from './dom.js';

const POLL_MS = 1500;
// Results larger than this are offered as a download only: a page holding megabytes of text is no
// easier to read than the file.
const VIEW_LIMIT = 256 * 1024;

export function renderDetail(main, id, app) {
  const path = `/v1/investigations/${encodeURIComponent(id)}`;
  const announce = h('p', { class: 'visually-hidden', role: 'status' });
  const messages = h('div', { class: 'messages' });
  // Apart from `messages`, so a failed poll and its recovery never wipe the outcome of a decision.
  const loadError = h('div', { class: 'messages' });
  const summary = h('dl', { class: 'summary' });
  const cancelReason = h('input', { name: 'reason', maxlength: 1000, size: 30 });
  const cancelButton = h('button', { type: 'submit', class: 'danger' }, 'Cancel investigation');
  const cancelForm = h('form', { class: 'inline-form', hidden: true, 'aria-label': 'Cancel this investigation' },
    field('Reason for cancelling (optional)', cancelReason), cancelButton);
  const responses = h('section', { 'aria-labelledby': 'responses-title' });
  const verdicts = h('section', { 'aria-labelledby': 'verdicts-title' });
  const jobs = h('section', { 'aria-labelledby': 'jobs-title' });
  const extra = h('div');

  main.append(
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Investigation ', h('span', { class: 'mono' }, id)),
      h('a', { class: 'button secondary', href: '#/' }, 'All investigations')),
    announce, loadError, messages, summary, cancelForm, responses, verdicts, jobs, extra,
  );

  let stopped = false;
  let timer = null;
  let last = { state: null, phase: null, responses: null };

  // One timer at most, even when a decision's refresh overlaps a poll already on its way.
  const schedule = (ms) => {
    clearTimeout(timer);
    timer = setTimeout(refresh, ms);
  };
  const refresh = async () => {
    clearTimeout(timer);
    let body;
    try {
      body = await getJson(path);
    } catch (error) {
      if (stopped) return;
      loadError.replaceChildren(notice('error', error.status === 404 ? error.message : `The investigation could not be read: ${error.message}`));
      // A 404 will not change; anything else may be a gateway restarting, so keep asking.
      if (error.status !== 404 && last.state !== 'completed') schedule(POLL_MS * 2);
      return;
    }
    if (stopped) return;
    loadError.replaceChildren();
    draw(body);
    if (body.state === 'running') schedule(POLL_MS);
  };

  const draw = (body) => {
    const report = body.report;
    const live = body.status;
    const phase = body.state === 'running' ? body.phase : body.state;
    // "Approving…", "Cancelling…" and the like are done with once the investigation has ended.
    if (last.state === 'running' && body.state !== 'running') messages.querySelectorAll('.notice-info').forEach((element) => element.remove());
    if (body.state !== last.state || phase !== last.phase) announce.textContent = `Investigation ${body.state}${body.state === 'running' ? `, ${phase}` : ''}`;

    drawSummary(summary, body, phase);
    cancelForm.hidden = body.state !== 'running';

    const records = report?.responses ?? live?.responses ?? [];
    const signature = JSON.stringify([body.state, records.map((r) => [r.id, r.approval.state, r.report?.status])]);
    // Rebuilt only when a response changed, so a reason being typed and the focus on a button survive the polling.
    if (signature !== last.responses) {
      const hadFocus = responses.contains(document.activeElement);
      drawResponses(responses, records, body.state === 'running', decide);
      last.responses = signature;
      // The button just pressed is gone; keep keyboard users where they were rather than at the top.
      if (hadFocus) responses.querySelector('h2').focus();
    }
    drawVerdicts(verdicts, report?.verdicts ?? live?.verdicts, body.state === 'running');
    if (report) drawReports(jobs, id, report.jobs, report.skipped);
    else drawLiveJobs(jobs, live?.jobs, body.state === 'running');
    drawExtra(extra, body);
    last = { ...last, state: body.state, phase };
  };

  const decide = async (verdict, record, reason) => {
    messages.replaceChildren(notice('info', `${verdict === 'approve' ? 'Approving' : 'Rejecting'} ${record.responder}…`));
    try {
      await postJson(`${path}/${verdict}`, { responseId: record.id, ...(reason ? { reason } : {}) });
      messages.replaceChildren(notice('info', `${verdict === 'approve' ? 'Approved' : 'Rejected'}: ${record.responder} on ${record.observable.type} ${record.observable.data}`));
    } catch (error) {
      messages.replaceChildren(notice('error', `Could not ${verdict}: ${error.message}`));
    }
    await refresh();
  };

  cancelForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    cancelButton.disabled = true;
    try {
      const reason = cancelReason.value.trim();
      await postJson(`${path}/cancel`, reason ? { reason } : {});
      messages.replaceChildren(notice('info', 'Cancelling: running engines are being stopped.'));
    } catch (error) {
      messages.replaceChildren(notice('error', `Could not cancel: ${error.message}`));
    } finally {
      cancelButton.disabled = false;
    }
    await refresh();
  });

  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function safeHttpUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

function drawSummary(summary, body, phase) {
  const report = body.report;
  const overall = report?.verdicts?.overall ?? body.status?.verdicts?.overall;
  const rows = [
    ['State', h('span', {}, stateBadge(body.state), report ? stateBadge(report.status) : null, report?.cancelled ? h('span', { class: 'badge state-muted' }, 'cancelled') : null)],
    body.state === 'running' ? ['Phase', phase] : null,
    ['Verdict', overall ? levelBadge(overall) : 'none yet'],
    report ? ['Source', report.source] : null,
    report ? ['Started', formatTime(report.startedAt)] : null,
    report ? ['Finished', `${formatTime(report.finishedAt)} (took ${formatDuration(report.startedAt, report.finishedAt)})`] : null,
    report?.observables?.length ? ['Observables', report.observables.map((o) => `${o.type} ${o.data}`).join(', ')] : null,
  ].filter(Boolean);
  const temporal = safeHttpUrl(body.links?.temporal);
  if (temporal) rows.push(['History', h('a', { href: temporal, target: '_blank', rel: 'noopener noreferrer' }, 'This run in the Temporal Web UI')]);
  replace(summary, rows.map(([name, value]) => h('div', {}, h('dt', {}, name), h('dd', {}, value))));
}

function drawResponses(section, records, running, decide) {
  replace(section, h('h2', { id: 'responses-title', tabindex: '-1' }, 'Responses'));
  if (!records.length) {
    section.append(h('p', { class: 'hint' }, running ? 'None yet: responders are chosen once the analyzers have finished.' : 'No responder ran: the response policy selected none.'));
    return;
  }
  section.append(h('ul', { class: 'cards' }, records.map((record) => {
    const approval = record.approval ?? {};
    const card = h('li', { class: `card response${approval.state === 'pending' ? ' pending' : ''}` },
      h('h3', {}, record.responder, ' on ', h('span', { class: 'mono' }, `${record.observable.type} ${record.observable.data}`)),
      h('p', {}, stateBadge(approval.state), ' ', approvalText(approval)),
      h('p', { class: 'hint' }, `Rule: ${record.rule}`),
      record.report ? h('p', {}, 'Responder ran: ', stateBadge(record.report.status),
        h('span', { class: 'hint' }, formatDuration(record.report.startedAt, record.report.finishedAt)), ' ', record.report.errorMessage ?? outputStart(record.report) ?? '') : null,
    );
    if (running && approval.state === 'pending') card.append(decisionForm(record, decide));
    return card;
  })));
}

/** The approval beside its badge, which already names the state. */
function approvalText(approval) {
  if (approval.state === 'pending') return approval.expiresAt ? `waiting for a decision until ${formatTime(approval.expiresAt)}` : 'waiting for a decision';
  if (approval.state === 'not-required') return 'no approval needed';
  const parts = [];
  if (approval.by) parts.push(`by ${approval.by}`);
  if (approval.at) parts.push(`at ${formatTime(approval.at)}`);
  if (approval.reason) parts.push(`(${approval.reason})`);
  return parts.join(' ');
}

function decisionForm(record, decide) {
  const reason = h('input', { name: 'reason', maxlength: 1000, size: 30 });
  const approve = h('button', { type: 'button', class: 'good' }, 'Approve');
  const reject = h('button', { type: 'button', class: 'danger' }, 'Reject');
  const act = (verdict) => async () => {
    approve.disabled = true;
    reject.disabled = true;
    await decide(verdict, record, reason.value.trim());
    approve.disabled = false;
    reject.disabled = false;
  };
  approve.addEventListener('click', act('approve'));
  reject.addEventListener('click', act('reject'));
  return h('div', { class: 'inline-form', role: 'group', 'aria-label': `Decide on ${record.responder} for ${record.observable.data}` },
    field('Reason (optional)', reason), approve, reject);
}

function drawVerdicts(section, verdicts, running) {
  const entries = Object.entries(verdicts?.bySubject ?? {});
  replace(section, h('h2', { id: 'verdicts-title' }, 'Verdicts'));
  if (!entries.length) {
    section.append(h('p', { class: 'hint' }, running ? 'No verdict yet.' : 'None: no engine reported on any observable.'));
    return;
  }
  section.append(h('table', { class: 'verdicts' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Observable'), h('th', { scope: 'col' }, 'Verdict'))),
    h('tbody', {}, entries.map(([subject, level]) => h('tr', {},
      h('td', { class: 'mono wrap' }, subject), h('td', {}, levelBadge(level)))))));
}

function drawLiveJobs(section, jobs, running) {
  replace(section, h('h2', { id: 'jobs-title' }, 'Engine jobs'));
  if (!jobs?.length) {
    section.append(h('p', { class: 'hint' }, running ? 'Waiting for the engine jobs to be planned…' : 'No engine ran.'));
    return;
  }
  section.append(h('table', { class: 'jobs' },
    h('thead', {}, h('tr', {}, ['Engine', 'Subject', 'State'].map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, jobs.map((job) => h('tr', {},
      h('td', {}, job.engine),
      h('td', { class: 'mono wrap' }, job.subject),
      h('td', {}, stateBadge(job.state), job.cached ? ' cached' : '', job.reason ? ` — ${job.reason}` : ''))))));
}

/** Engines that applied and did not run (file type, TLP, PAP), each with its reason: not failures. */
function skippedList(skipped) {
  return h('ul', { class: 'skipped' }, skipped.map((job) => h('li', {},
    stateBadge('skipped'), ' ', job.engine, ' on ', h('span', { class: 'mono wrap' }, describeSubject(job.subject)), ` — ${job.reason}`)));
}

function describeSubject(subject) {
  if (subject?.kind === 'file') return `file ${subject.file.filename ?? subject.file.sha256.slice(0, 12)}`;
  if (subject?.kind === 'observable') return `${subject.observable.type} ${subject.observable.data}`;
  return '';
}

function drawReports(section, id, reports, skipped = []) {
  replace(section, h('h2', { id: 'jobs-title' }, 'Engine reports'));
  if (skipped.length) section.append(skippedList(skipped));
  if (!reports.length) {
    section.append(h('p', { class: 'hint' }, skipped.length ? 'No engine ran: those that apply were skipped.' : 'No engine ran: none accepts what was submitted.'));
    return;
  }
  section.append(h('ul', { class: 'cards' }, reports.map((report, index) => {
    const card = h('li', { class: 'card report' },
      h('h3', {}, report.engine, ' on ', h('span', { class: 'mono wrap' }, describeSubject(report.subject))),
      h('p', {}, stateBadge(report.status),
        report.cached ? h('span', { class: 'badge state-muted' }, 'cached') : null,
        report.truncated ? h('span', { class: 'badge state-bad' }, 'output truncated') : null,
        h('span', { class: 'hint' }, ` ${formatDuration(report.startedAt, report.finishedAt)}`)),
      report.taxonomies?.length ? h('p', { class: 'badges' }, report.taxonomies.map(taxonomyBadge)) : null,
      report.errorMessage ? notice('error', report.errorMessage) : null,
      outputStart(report) ? h('p', {}, h('span', { class: 'hint' }, 'Output begins: '), h('code', { class: 'wrap' }, outputStart(report))) : null,
      artifactList(report.artifacts),
    );
    const blob = report.result ?? report.logs;
    if (blob) card.append(resultActions(id, report, blob, index));
    return card;
  })));
}

/**
 * Menagerie's summary, the first 80 bytes of the output, where it tells something: for a file or
 * stdout engine it is the start of the answer, for a Cortex engine only the start of its output.json,
 * whose taxonomies are shown already.
 */
function outputStart(report) {
  const summary = report.summary?.trim();
  if (!summary || summary.startsWith('{"success"')) return null;
  return summary;
}

function artifactList(artifacts) {
  if (!artifacts?.length) return null;
  return h('details', { class: 'artifacts' },
    h('summary', {}, `${artifacts.length} artifact${artifacts.length === 1 ? '' : 's'}`),
    h('ul', {}, artifacts.map((artifact) => h('li', {},
      h('span', { class: 'badge state-muted' }, artifact.type), ' ',
      h('span', { class: 'mono wrap' }, artifact.data ?? artifact.file?.filename ?? artifact.file?.sha256 ?? ''),
      artifact.message ? ` — ${artifact.message}` : null))));
}

/** View and Download buttons for an engine's result; /link needs the key, so both fetch it first. */
function resultActions(id, report, blob, index) {
  const link = `/link/${encodeURIComponent(id)}?job=${index}`;
  const what = report.result ? 'result' : 'logs';
  const viewer = h('div', { class: 'viewer' });
  const view = h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false' }, `View ${what}`);
  const download = h('button', { type: 'button', class: 'secondary' }, `Download ${what} (${formatBytes(blob.size)})`);

  view.addEventListener('click', async () => {
    if (view.getAttribute('aria-expanded') === 'true') {
      viewer.replaceChildren();
      view.setAttribute('aria-expanded', 'false');
      view.textContent = `View ${what}`;
      return;
    }
    if (blob.size > VIEW_LIMIT) {
      replace(viewer, notice('info', `The ${what} is ${formatBytes(blob.size)}: download it instead.`));
      return;
    }
    try {
      const { blob: bytes, type } = await getBlob(link);
      replace(viewer, h('pre', { class: 'result', tabindex: '0', 'aria-label': `${report.engine} ${what}` }, await readable(bytes, type)));
      view.setAttribute('aria-expanded', 'true');
      view.textContent = `Hide ${what}`;
    } catch (error) {
      replace(viewer, notice('error', `The ${what} could not be read: ${error.message}`));
    }
  });

  download.addEventListener('click', async () => {
    try {
      const { blob: bytes } = await getBlob(link);
      const url = URL.createObjectURL(bytes);
      const anchor = h('a', { href: url, download: `${id}-${report.engine}${extension(blob.contentType ?? bytes.type)}` });
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
      // The browser has taken the download by the next tick; the Blob need not outlive it.
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
      replace(viewer, notice('error', `The ${what} could not be downloaded: ${error.message}`));
    }
  });

  return h('div', { class: 'result-actions' }, h('div', { class: 'actions' }, view, download), viewer);
}

async function readable(bytes, type) {
  const text = await bytes.text();
  if (/json/.test(type)) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }
  if (/^text\//.test(type) || !/[\u0000-\u0008\u000e-\u001f]/.test(text)) return text;
  return `(binary, ${formatBytes(bytes.size)}: download it to look inside)`;
}

function extension(type) {
  if (/json/.test(type ?? '')) return '.json';
  if (/^text\//.test(type ?? '')) return '.txt';
  return '.bin';
}

function drawExtra(section, body) {
  const report = body.report;
  replace(section);
  if (body.state === 'failed') section.append(notice('error', body.error ?? 'The investigation failed.'));
  if (body.state === 'running' && !body.status) {
    section.append(notice('info', 'No worker answered the live status query yet; the state above comes from Temporal.'));
  }
  if (report?.errors?.length) {
    section.append(h('section', { 'aria-labelledby': 'errors-title' },
      h('h2', { id: 'errors-title' }, 'Errors'),
      h('ul', {}, report.errors.map((error) => h('li', {}, error)))));
  }
  if (report?.notifications?.length) {
    section.append(h('section', { 'aria-labelledby': 'notifications-title' },
      h('h2', { id: 'notifications-title' }, 'Notifications'),
      h('ul', {}, report.notifications.map((n) => h('li', {}, stateBadge(n.state), ` ${n.target}`, n.detail ? `: ${n.detail}` : '')))));
  }
}
