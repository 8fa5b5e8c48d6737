import type { KnownBlock } from '@slack/types';
import {
  type EngineJobState,
  type InvestigationReport,
  type InvestigationStatus,
  type ResponseRecord,
  type TaskReport,
  type TaxonomyLevel,
  subjectKey,
} from '../core/investigation';
import { defang } from '../core/observables';

/**
 * Slack messages as Block Kit, built from Docket's own types. Pure, so the gateway (quick answers)
 * and the main worker's notifier (progress and summaries) render the same thing.
 */
export interface SlackMessage {
  /** Shown in notifications and by clients that cannot draw blocks. */
  text: string;
  blocks: KnownBlock[];
}

export interface Links {
  /** The console's address, e.g. http://localhost:8100/console/ */
  console: string;
  /** The Temporal Web UI's address. */
  temporalUi: string;
  namespace: string;
}

export const APPROVE_ACTION = 'docket_approve';
export const REJECT_ACTION = 'docket_reject';

/** What an approval button carries: the investigation and the one response it decides. */
export interface ApprovalValue {
  id: string;
  response: string;
}

/** Slack draws at most 3000 characters in a section and 50 blocks in a message. */
const SECTION_LIMIT = 2900;
const BLOCK_LIMIT = 48;
const LIST_LIMIT = 25;

const JOB_ICONS: Record<EngineJobState['state'], string> = {
  queued: ':hourglass_flowing_sand:',
  running: ':gear:',
  success: ':white_check_mark:',
  failure: ':x:',
  timeout: ':alarm_clock:',
  error: ':warning:',
  skipped: ':fast_forward:',
};

const VERDICT_ICONS: Record<TaxonomyLevel, string> = {
  malicious: ':red_circle:',
  suspicious: ':large_orange_circle:',
  safe: ':large_green_circle:',
  info: ':white_circle:',
};

/** Text Slack would otherwise read as markup (`<!channel>`, links). */
export function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** An observable as a reader may see it: defanged, so nobody opens a malicious link by a click. */
export function showObservable(data: string): string {
  return code(defang(data));
}

/** Inline code, which Slack never turns into a link. */
export function code(text: string): string {
  return `\`${escape(text).replace(/`/g, "'")}\``;
}

export function consoleLink(links: Links, id: string): string {
  return `${links.console.replace(/\/?$/, '/')}#/investigations/${encodeURIComponent(id)}`;
}

export function temporalLink(links: Links, id: string): string {
  return `${links.temporalUi.replace(/\/$/, '')}/namespaces/${encodeURIComponent(links.namespace)}/workflows/${encodeURIComponent(id)}`;
}

export function section(text: string): KnownBlock {
  return { type: 'section', text: { type: 'mrkdwn', text: clip(text, SECTION_LIMIT) } };
}

function context(text: string): KnownBlock {
  return { type: 'context', elements: [{ type: 'mrkdwn', text: clip(text, SECTION_LIMIT) }] };
}

function linksBlock(links: Links, id: string): KnownBlock {
  return context(`<${consoleLink(links, id)}|Open in the console> · <${temporalLink(links, id)}|Temporal Web UI> · \`${escape(id)}\``);
}

export function clip(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/** A plain answer, as one section. */
export function plain(text: string): SlackMessage {
  return { text, blocks: [section(text)] };
}

/** The message an investigation or task starts with, before its workflow has said anything. */
export function startingMessage(line: string): SlackMessage {
  return { text: line, blocks: [section(line)] };
}

/** Subject keys (`url:https://…`, `file:<sha256>`) in words, with file names where the jobs know them. */
function subjectLabel(key: string, fileNames: Map<string, string>): string {
  const at = key.indexOf(':');
  const type = key.slice(0, at);
  const data = key.slice(at + 1);
  if (type === 'file') return `file ${code(fileNames.get(data) ?? data.slice(0, 12))}`;
  return `${type} ${showObservable(data)}`;
}

function verdictLines(bySubject: Record<string, TaxonomyLevel>, fileNames = new Map<string, string>()): string[] {
  return Object.entries(bySubject).slice(0, LIST_LIMIT).map(([key, level]) => `${VERDICT_ICONS[level]} *${level}* — ${subjectLabel(key, fileNames)}`);
}

function jobLine(job: EngineJobState): string {
  // The workflow describes a subject as `<type> <data>`, or `file <name>`.
  const at = job.subject.indexOf(' ');
  const type = at > 0 ? job.subject.slice(0, at) : job.subject;
  const data = at > 0 ? job.subject.slice(at + 1) : '';
  const subject = type === 'file' ? `file ${code(data)}` : `${escape(type)} ${showObservable(data)}`;
  return `${JOB_ICONS[job.state]} ${escape(job.engine)} · ${subject} — ${job.state}${job.cached ? ' (cached)' : ''}${job.reason ? `: ${escape(job.reason)}` : ''}`;
}

/** One line for a response, saying who decided it, or that nobody did in time. */
export function responseLine(response: ResponseRecord): string {
  const what = `*${escape(response.responder)}* on ${response.observable.type} ${showObservable(response.observable.data)}`;
  const approval = response.approval;
  const by = approval.by ? ` by ${slackName(approval.by)}` : '';
  const why = approval.reason ? ` (${escape(approval.reason)})` : '';
  const outcome = response.report ? ` — ran: ${response.report.status}` : response.skipped ? ` — skipped: ${escape(response.skipped)}` : '';
  switch (approval.state) {
    case 'pending': return `:raising_hand: ${what} waits for approval${approval.expiresAt ? ` until ${approval.expiresAt}` : ''}`;
    case 'approved': return `:heavy_check_mark: ${what} approved${by}${why}${outcome}`;
    case 'rejected': return `:no_entry_sign: ${what} rejected${by}${why}`;
    case 'expired': return `:hourglass: ${what} expired without a decision${why}`;
    default: return `:zap: ${what} ran without approval (policy rule ${escape(response.rule)})${outcome}`;
  }
}

/** Who decided, as Slack shows people: `Jane (Slack U123)` becomes a mention of U123. */
export function slackName(by: string): string {
  const slackUser = /\(Slack ([UW][A-Z0-9]+)\)$/.exec(by);
  return slackUser ? `<@${slackUser[1]}>` : escape(by);
}

/** The name the decision records: readable in the console and the report, and a mention in Slack. */
export function deciderName(user: { id: string; username?: string; name?: string }): string {
  return `${user.username ?? user.name ?? user.id} (Slack ${user.id})`;
}

function approvalButtons(id: string, response: ResponseRecord): KnownBlock {
  // Both buttons carry the same value; the action id says which way the decision goes.
  const value = JSON.stringify({ id, response: response.id } satisfies ApprovalValue);
  return {
    type: 'actions',
    block_id: `approval:${response.id}`,
    elements: [
      { type: 'button', action_id: APPROVE_ACTION, style: 'primary', text: { type: 'plain_text', text: `Approve ${clip(response.responder, 30)}` }, value },
      { type: 'button', action_id: REJECT_ACTION, style: 'danger', text: { type: 'plain_text', text: 'Reject' }, value },
    ],
  };
}

/** The live message: the phase, every engine job, the verdicts so far, and buttons for pending approvals. */
export function progressMessage(status: InvestigationStatus, links: Links): SlackMessage {
  const done = status.jobs.filter((job) => !['queued', 'running'].includes(job.state)).length;
  const headline = `:mag: Investigation — ${status.phase}, ${done}/${status.jobs.length} engine job(s) done, verdict so far *${status.verdicts.overall}*`;
  const blocks: KnownBlock[] = [section(headline)];
  if (status.jobs.length) blocks.push(section(listed(status.jobs.map(jobLine))));
  const verdicts = verdictLines(status.verdicts.bySubject);
  if (verdicts.length) blocks.push(section(verdicts.join('\n')));
  for (const response of status.responses) {
    blocks.push(section(responseLine(response)));
    if (response.approval.state === 'pending') blocks.push(approvalButtons(status.id, response));
  }
  blocks.push(linksBlock(links, status.id));
  const pending = status.responses.filter((response) => response.approval.state === 'pending').length;
  return { text: `${headline}${pending ? ` — ${pending} response(s) wait for approval` : ''}`, blocks: capped(blocks) };
}

/** The final summary: the verdict per observable, the engines that ran, the responses, the links. */
export function summaryMessage(report: InvestigationReport, links: Links): SlackMessage {
  const fileNames = new Map(report.jobs.flatMap((job) => (job.subject.kind === 'file' && job.subject.file.filename ? [[job.subject.file.sha256, job.subject.file.filename] as [string, string]] : [])));
  const icon = report.cancelled ? ':octagonal_sign:' : VERDICT_ICONS[report.verdicts.overall];
  const state = report.cancelled ? 'cancelled' : report.status === 'Success' ? 'done' : 'done, with failures';
  const headline = `${icon} Investigation ${state}: *${report.verdicts.overall}*`;
  const blocks: KnownBlock[] = [{ type: 'header', text: { type: 'plain_text', text: clip(`Verdict: ${report.verdicts.overall}`, 150) } }, section(headline)];
  const verdicts = verdictLines(report.verdicts.bySubject, fileNames);
  blocks.push(section(verdicts.length ? verdicts.join('\n') : 'No engine gave a verdict.'));
  const analyzed = [...new Set(report.jobs.map((job) => subjectLabel(subjectKey(job.subject), fileNames)))];
  if (analyzed.length) blocks.push(context(`Analyzed: ${clip(analyzed.join(', '), 1000)}`));
  const engines = new Map<string, { ok: number; failed: number }>();
  for (const job of report.jobs) {
    const count = engines.get(job.engine) ?? { ok: 0, failed: 0 };
    if (job.status === 'success') count.ok += 1;
    else count.failed += 1;
    engines.set(job.engine, count);
  }
  if (engines.size) {
    const line = [...engines].map(([name, count]) => `${escape(name)} ${count.ok} ok${count.failed ? `, ${count.failed} failed` : ''}`).join(' · ');
    blocks.push(context(`Engines: ${line}`));
  }
  const skipped = report.skipped ?? [];
  if (skipped.length) {
    blocks.push(context(`Skipped: ${clip(skipped.slice(0, 5).map((job) => `${escape(job.engine)} (${escape(job.reason)})`).join(' · '), 1000)}`));
  }
  for (const response of report.responses) blocks.push(section(responseLine(response)));
  if (report.errors.length) blocks.push(context(`:warning: ${report.errors.slice(0, 5).map(escape).join('\n')}`));
  blocks.push(linksBlock(links, report.id));
  return { text: `${headline} — ${verdicts.length} verdict(s)`, blocks: capped(blocks) };
}

/** What `run <engine>` printed, or why it failed. */
export function taskMessage(report: TaskReport, output: { text: string; truncated: boolean } | undefined, links: Links): SlackMessage {
  const ok = report.status === 'Success';
  const headline = `${ok ? ':white_check_mark:' : ':x:'} \`run ${escape(report.engine)}\` ${ok ? 'finished' : 'failed'}`;
  const blocks: KnownBlock[] = [section(headline)];
  if (output) {
    const body = output.text.replace(/```/g, "'''").trimEnd() || '(no output)';
    blocks.push(section(`\`\`\`${clip(escape(body), SECTION_LIMIT - 10)}\`\`\``));
    if (output.truncated) blocks.push(context('The output is longer; the console has all of it.'));
  }
  const problems = [...report.errors, ...(report.report?.errorMessage ? [report.report.errorMessage] : [])];
  if (problems.length) blocks.push(section(problems.slice(0, 5).map((problem) => `:warning: ${escape(problem)}`).join('\n')));
  blocks.push(linksBlock(links, report.id));
  return { text: `${headline}${output ? `: ${clip(output.text.trim(), 200)}` : ''}`, blocks };
}

export function listed(lines: string[]): string {
  if (lines.length <= LIST_LIMIT) return lines.join('\n');
  return [...lines.slice(0, LIST_LIMIT), `…and ${lines.length - LIST_LIMIT} more`].join('\n');
}

/** Keeps the links (last block) when a message would pass Slack's block limit. */
function capped(blocks: KnownBlock[]): KnownBlock[] {
  if (blocks.length <= BLOCK_LIMIT) return blocks;
  return [...blocks.slice(0, BLOCK_LIMIT - 2), context(`…${blocks.length - BLOCK_LIMIT + 1} more; the console has everything.`), blocks[blocks.length - 1]];
}
