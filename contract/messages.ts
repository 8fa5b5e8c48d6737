import { defineSearchAttributeKey } from '@temporalio/common';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { findingKey } from '../core/compliance';
import type { ComplianceFinding } from '../core/compliance';
import type { Decision, InvestigationReport, InvestigationStatus, Observable, ResponseRecord } from '../core/investigation';

/**
 * Docket's Temporal contract: what the workflows and everything that starts, reads or steers them
 * (gateway, Slack, schedules, compliance events, scripts) must agree on. Workflows import it too, so
 * it imports only `@temporalio/workflow`, `@temporalio/common`, `core/` and types.
 *
 * The names below are recorded in every workflow history (test/fixtures/histories): renaming one
 * breaks running executions, so a name here never changes; the constant's identifier may.
 */

/** Workflow type names: the exported functions of workflows/index.ts. */
export const WorkflowType = {
  investigation: 'investigation',
  compliance: 'compliance',
  task: 'task',
} as const;
export type WorkflowType = (typeof WorkflowType)[keyof typeof WorkflowType];

// ------------------------------------------------------------------------------ queries, updates, signals

/** Where an investigation (or a compliance remediation waiting for approval) is. */
export const statusQuery = defineQuery<InvestigationStatus>('status');
/** An investigation's report so far. */
export const reportQuery = defineQuery<InvestigationReport>('report');
/** Approves one pending response by id, or all of them (investigations and compliance remediations). */
export const approveUpdate = defineUpdate<ResponseRecord[], [Decision]>('approve');
/** Rejects one pending response by id, or all of them. */
export const rejectUpdate = defineUpdate<ResponseRecord[], [Decision]>('reject');
/** The update for each decision a person can make, as the routes and Slack buttons name them. */
export const decisionUpdates = { approve: approveUpdate, reject: rejectUpdate } as const;
export type CancelRequest = { by: string; reason?: string };
export const cancelSignal = defineSignal<[CancelRequest]>('cancel');
export const addObservablesSignal = defineSignal<[Observable[]]>('addObservables');

// ------------------------------------------------------------------------------ search attributes

/**
 * Docket's search attributes: they make investigations searchable in `GET /v1/investigations` and in
 * the Temporal Web UI. The dev server registers them at start (system/temporal-dev.ts); on an
 * existing cluster the main worker registers any that are missing.
 */
export const SEARCH_ATTRIBUTES = {
  DocketSource: 'Keyword',
  DocketVerdict: 'Keyword',
  DocketEngines: 'KeywordList',
  DocketObservableTypes: 'KeywordList',
  /**
   * The values analyzed, given or found as artifacts, in core/observable-index.ts's form and within
   * its bound. SQL visibility stores (SQLite, PostgreSQL) have three KeywordList slots: this fills the last.
   */
  DocketObservables: 'KeywordList',
} as const;

export const sourceKey = defineSearchAttributeKey('DocketSource', 'KEYWORD');
export const verdictKey = defineSearchAttributeKey('DocketVerdict', 'KEYWORD');
export const enginesKey = defineSearchAttributeKey('DocketEngines', 'KEYWORD_LIST');
export const observableTypesKey = defineSearchAttributeKey('DocketObservableTypes', 'KEYWORD_LIST');
export const observablesKey = defineSearchAttributeKey('DocketObservables', 'KEYWORD_LIST');

// ------------------------------------------------------------------------------ failure types

/** Failure types the engine activity raises and the workflows' retry policy and reports tell apart. */
export const FailureType = {
  imageMissing: 'ImageMissing',
  timeout: 'EngineTimeout',
  dockerUnavailable: 'DockerUnavailable',
  unknownEngine: 'UnknownEngine',
  processRunnerOff: 'ProcessRunnerOff',
  inputMissing: 'InputMissing',
} as const;

/** Failures no retry of the engine job can cure. */
export const NON_RETRYABLE_FAILURES: string[] = [FailureType.imageMissing, FailureType.unknownEngine, FailureType.processRunnerOff, FailureType.inputMissing];

// ------------------------------------------------------------------------------ ID schemes

/** A compliance remediation's workflow id is its finding's idempotency key (core/compliance.ts). */
export function complianceWorkflowId(finding: ComplianceFinding): string {
  return findingKey(finding);
}

/** The workflow a Slack request starts: named by Slack's own id of the request, so a retry finds it. */
export function slackWorkflowId(deliveryId: string): string {
  return `slack-${deliveryId}`;
}

/** The Temporal Schedule id of the Docket schedule `id` (a `schedules/*.yaml` file's id). */
export function temporalScheduleId(queuePrefix: string, id: string): string {
  return `${queuePrefix}docket-${id}`;
}

/** The job id of one bot of a remediation: the same bot may appear twice in one rule, so its place counts. */
export function botJobId(workflowId: string, index: number, bot: string): string {
  return `${workflowId}/${index + 1}-${bot}`;
}

/** Cortex job ids (`POST /api/analyzer/<id>/run`) name their investigation's workflow; the prefix tells them from other investigations. */
export const CORTEX_JOB_PREFIX = 'cortex-';

export function cortexJobId(uuid: string): string {
  return `${CORTEX_JOB_PREFIX}${uuid}`;
}

export function isCortexJobId(id: string): boolean {
  return id.startsWith(CORTEX_JOB_PREFIX) && id.length > CORTEX_JOB_PREFIX.length && id.length <= 100;
}

/** The idempotency key a responder receives: one per response of one run of one investigation. */
export function responseIdempotencyKey(workflowId: string, runId: string, responseId: string, responder: string): string {
  return `${workflowId}/${runId}/${responseId}/${responder}`;
}
