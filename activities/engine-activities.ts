import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../contract/messages';
import { type EngineManifest, expandEnv, resolveConfig } from '../core/engine-manifest';
import { summarize } from '../core/menagerie';
import { markingReason } from '../core/plan';
import { describeSubject, type EngineReport, MAX_INLINE_ARTIFACTS, subjectKey } from '../core/investigation';
import { BlobNotFoundError, type BlobStore } from '../infra/blob-store';
import type { EngineRunner, EngineRunners } from '../infra/engine-runner';
import type { EngineRegistry } from '../infra/engine-registry';
import { DockerUnavailableError, EngineTimeoutError, ImageMissingError } from './errors';
import type { Logger } from '../infra/log';
import type { DocketMetrics } from '../infra/metrics';
import { type EngineRequest, interpret, prepareJob } from './protocols';
import { ProcessRunnerDisabledError } from './runners/process';
import { ResultCache } from '../infra/result-cache';

export interface RunEngineInput extends EngineRequest {
  engine: string;
  /** Skip the result cache. */
  force?: boolean;
}

export interface EngineActivityDeps {
  registry: EngineRegistry;
  /** The runners this worker has, one per manifest `runner:` value (activities/runners). */
  runners: EngineRunners;
  blobs: BlobStore;
  log: Logger;
  /** Where `${NAME}` in manifests is looked up: the worker's environment. */
  env: Record<string, string | undefined>;
  cache?: ResultCache;
  metrics?: DocketMetrics;
}

export function createEngineActivities(deps: EngineActivityDeps) {
  return {
    /**
     * Runs one engine on one subject: its protocol lays out the job, the runner its manifest names
     * runs it (a hardened container unless `runner: process`), the protocol reads the report; large
     * output goes to the blob store.
     */
    async runEngine(input: RunEngineInput): Promise<EngineReport> {
      const context = Context.current();
      const manifest = deps.registry.get(input.engine);
      if (!manifest) {
        throw ApplicationFailure.nonRetryable(
          `engine ${input.engine} is not declared on this worker (engines here: ${deps.registry.names().join(', ') || 'none'})`,
          FailureType.unknownEngine,
        );
      }
      const attempt = context.info.attempt;
      const startedAt = new Date().toISOString();
      const label = `${input.engine} on ${describeSubject(input.subject)}`;
      // A required config item left empty in this worker's environment fails the job before anything starts.
      const config = resolveConfig(manifest, deps.env);
      const notStarted = (message: string): EngineReport => {
        deps.log.job(input.job, `${label}: ${message}`);
        return {
          engine: input.engine, subject: input.subject, status: 'failure', startedAt, finishedAt: new Date().toISOString(), attempt,
          summary: summarize(message), errorMessage: message, truncated: false, taxonomies: [], artifacts: [],
        };
      };
      // Checked here too, for the jobs no plan looked at (tasks, compliance bots) and a manifest changed since the plan.
      const refused = markingReason(manifest, input);
      if (refused) return notStarted(`engine ${input.engine} was not started: ${refused}`);
      if (!config.ok) return notStarted(`${config.error}; the job was not started`);
      const resolved = { ...manifest, config: config.config, env: expandEnv(manifest.env, deps.env) };
      if (input.env) input = { ...input, env: expandEnv(input.env, deps.env) };
      try {
        const runner = runnerFor(resolved, deps.runners);
        const cacheable = deps.cache && resolved.kind === 'analyzer' && resolved.cache > 0;
        const identity = cacheable ? await identify(resolved, runner) : undefined;
        const cacheKey = identity
          ? ResultCache.key({
            engine: input.engine, imageId: identity, config: resolved.config,
            subject: subjectKey(input.subject), args: input.args, parameters: input.parameters,
          })
          : undefined;
        if (cacheKey && !input.force) {
          const cached = await deps.cache!.get(cacheKey, resolved.cache);
          if (cached) {
            deps.log.job(input.job, `${label}: ${cached.status} (reused a result from ${cached.finishedAt})`);
            return { ...cached, subject: input.subject, cached: true };
          }
        }
        deps.log.job(input.job, `${label}: running (attempt ${attempt})`);
        const run = await runner.run({
          ...prepareJob(resolved, input, deps.blobs),
          imageId: identity,
          attempt,
          signal: context.cancellationSignal,
          heartbeat: () => context.heartbeat(),
        });
        const outcome = await interpret(resolved, run, deps.blobs);
        deps.metrics?.engineJob(input.engine, outcome.status, run.durationMs / 1000);
        deps.log.job(input.job, `${label}: ${outcome.status} in ${(run.durationMs / 1000).toFixed(1)}s${outcome.errorMessage ? ` (${outcome.summary})` : ''}`);
        const report: EngineReport = {
          engine: input.engine,
          subject: input.subject,
          imageId: run.imageId,
          startedAt,
          finishedAt: new Date().toISOString(),
          attempt,
          ...outcome,
        };
        if (report.artifacts.length > MAX_INLINE_ARTIFACTS) {
          const stored = await deps.blobs.putBuffer(JSON.stringify(report.artifacts));
          report.artifactsRef = { sha256: stored.sha256, size: stored.size, filename: 'artifacts.json', contentType: 'application/json' };
          report.artifacts = report.artifacts.slice(0, MAX_INLINE_ARTIFACTS);
        }
        if (cacheKey && report.status === 'success') await deps.cache!.put(cacheKey, report);
        return report;
      } catch (error) {
        deps.log.job(input.job, `${label}: ${(error as Error).message}`);
        deps.metrics?.engineJob(input.engine, error instanceof EngineTimeoutError ? 'timeout' : 'error');
        throw toFailure(error);
      }
    },
  };
}

export type EngineActivities = ReturnType<typeof createEngineActivities>;

function runnerFor(manifest: EngineManifest, runners: EngineRunners): EngineRunner {
  const runner = runners.find(manifest.runner);
  if (runner) return runner;
  throw ApplicationFailure.nonRetryable(
    `engine ${manifest.name} names runner: ${manifest.runner}, which this engine worker does not have (runners here: ${runners.list().map((r) => r.kind).join(', ') || 'none'})`,
    FailureType.unknownEngine,
  );
}

/** What a cached result is tied to: the image ID, or the local command of a process engine. */
async function identify(manifest: EngineManifest, runner: EngineRunner): Promise<string> {
  const identity = await runner.identify(manifest);
  if (!identity) throw new ImageMissingError(manifest.image, manifest.name);
  return identity;
}

function toFailure(error: unknown): unknown {
  if (error instanceof ImageMissingError) return ApplicationFailure.nonRetryable(error.message, FailureType.imageMissing);
  if (error instanceof EngineTimeoutError) return ApplicationFailure.retryable(error.message, FailureType.timeout);
  if (error instanceof BlobNotFoundError) {
    return ApplicationFailure.nonRetryable(`the job's input is gone from the blob store (${error.message}); submit the file again`, FailureType.inputMissing);
  }
  if (error instanceof ProcessRunnerDisabledError) return ApplicationFailure.nonRetryable(error.message, FailureType.processRunnerOff);
  if (error instanceof DockerUnavailableError) return ApplicationFailure.retryable(error.message, FailureType.dockerUnavailable);
  return error;
}
