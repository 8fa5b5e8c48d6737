import multipart from '@fastify/multipart';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type RouteOptions } from 'fastify';
import type { DocketClient } from '../contract/client';
import type { BlobStore } from '../infra/blob-store';
import type { NotifyLimits } from '../core/notify-targets';
import type { EngineRegistry } from '../infra/engine-registry';
import type { EngineRunners } from '../infra/engine-runner';
import { DocketMetrics } from '../infra/metrics';
import { DocketSchedules } from '../infra/schedule-control';
import { admission } from './admission';
import { type AuditSink, audit, stdoutAudit } from './audit';
import { type AnonymousPolicy, auth, describeCaller } from './auth';
import { type ComplianceRouteDeps, complianceRoutes } from './compliance-routes';
import { consoleRoutes } from './console-routes';
import { cortexApiRoutes } from './cortex-api-routes';
import { engineRoutes } from './engine-routes';
import { FindingLedger, findingsRoutes } from './findings-routes';
import { ApiError, clientErrorHandler, errorHandling, frameworkErrors } from './errors';
import { healthRoutes } from './health-routes';
import type { KeyStore } from './keys';
import { menagerieRoutes } from './menagerie-routes';
import { metricsPlugin } from './metrics-routes';
import { openapi } from './openapi';
import { validatorCompiler } from './schemas';
import { scheduleRoutes } from './schedule-routes';
import { statsRoutes } from './stats-routes';
import { vendorRoutes } from './vendor-routes';
import { allowedHosts, siteGuard } from './site-guard';
import { type SlackPluginOptions, slackPlugin } from './slack/app';
import { v1InvestigationRoutes } from './investigation-routes';

export interface GatewayDeps {
  /** Temporal, through the one typed client; its task queue is the main worker's, where investigations start. */
  temporal: DocketClient;
  blobs: BlobStore;
  registry: EngineRegistry;
  /** The engine runners (activities/runners), asked by /readyz and /v1/engines: the gateway never talks to Docker itself. */
  runners: EngineRunners;
  keys: KeyStore;
  /** What callers without a key may do (`anonymousPolicy(config.DOCKET_ANONYMOUS, config.DOCKET_HOST)`). */
  anonymous: AnonymousPolicy;
  /** Host names answered besides IP addresses (`allowedHosts(config.DOCKET_ALLOWED_HOSTS, config.DOCKET_HOST)`); `localhost` when absent. */
  allowedHosts?: readonly string[];
  /**
   * Requests a minute per key, or per address for callers without one; also the refused keys an
   * address may send a minute before its keyed requests get 429. 0 turns both off.
   */
  rateLimit: number;
  /** State-changing requests handled at once before more get 503 + Retry-After (DOCKET_MAX_INFLIGHT_STARTS); 0 or absent: no bound. */
  maxInflightStarts?: number;
  /** The longest a read waits for a job to finish (DOCKET_MAX_WAIT): `?wait=` at most 60 s, `waitreport` at most 10 minutes when absent. */
  maxWaitMs?: number;
  /** Where audit lines go; stdout unless given. */
  audit?: AuditSink;
  /** The registry `/metrics` serves; pass the one the engine workers record into. */
  metrics?: DocketMetrics;
  /** Links from investigations to their runs in the Temporal Web UI. */
  temporalUiUrl?: string;
  namespace?: string;
  /** Slack (Bolt): HTTP at `/slack/events`, or Socket Mode; off when absent. */
  slack?: Pick<SlackPluginOptions, 'settings' | 'log'>;
  /** DOCKET_QUEUE_PREFIX: which Temporal Schedules are this installation's. */
  queuePrefix?: string;
  /** The accounts compliance bots act in (`loadComplianceAccounts`), and where SNS confirmations are logged. */
  compliance?: Pick<ComplianceRouteDeps, 'accounts' | 'log'>;
  /** How long each `/readyz` check may take. */
  readyTimeoutMs?: number;
  /** Where a request's own `notify` may point (DOCKET_WEBHOOK_ALLOW, DOCKET_SLACK_CHANNELS); nowhere when absent. */
  notify?: NotifyLimits;
  logger?: boolean | { level: string };
  /** Told of every route as it is added (fastify's onRoute), before any is: a test walks them all. */
  onRoute?: (route: RouteOptions) => void;
}

/** The HTTP gateway; it talks to Temporal only through the client. */
export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: 200 },
    clientErrorHandler,
    frameworkErrors,
  });
  // Every request schema is zod's (gateway/schemas.ts), so a refusal reads the same on every route.
  app.setValidatorCompiler(validatorCompiler);
  if (deps.onRoute) app.addHook('onRoute', deps.onRoute);
  await app.register(errorHandling);
  await app.register(audit, { sink: deps.audit ?? stdoutAudit });
  // Before auth, so a page's request is refused before the caller's key (or anonymous role) counts.
  await app.register(siteGuard, { allowedHosts: deps.allowedHosts ?? allowedHosts('', '127.0.0.1') });
  // Auth's onRequest hook is added before any route's own hooks (rate limit), so they see the caller.
  await app.register(auth, { keys: deps.keys, anonymous: deps.anonymous, refusedKeysPerMinute: deps.rateLimit });
  if (deps.rateLimit > 0) {
    await app.register(rateLimit, {
      global: true,
      max: deps.rateLimit,
      timeWindow: 60_000,
      keyGenerator: (request) => (request.caller?.kind === 'key' ? `key:${request.caller.key.id}` : `ip:${request.ip}`),
      errorResponseBuilder: (request, context) => new ApiError(
        429, 'rate_limited',
        `${describeCaller(request.caller)} sent more than ${context.max} requests this minute; try again in ${context.after}`,
        { limit: context.max },
      ),
    });
  }
  // After auth and the rate limit, so a refused key or a caller over its limit still reads 401/429.
  await app.register(admission, { maxInflight: deps.maxInflightStarts ?? 0 });
  await app.register(openapi);
  await app.register(multipart, { throwFileSizeLimit: true });
  await app.register(metricsPlugin, { metrics: deps.metrics ?? new DocketMetrics() });
  await app.register(healthRoutes, {
    client: deps.temporal.client, blobs: deps.blobs, runners: deps.runners, registry: deps.registry, checkTimeoutMs: deps.readyTimeoutMs,
  });
  await app.register(engineRoutes, { registry: deps.registry, runners: deps.runners });
  await app.register(menagerieRoutes, { registry: deps.registry, blobs: deps.blobs, temporal: deps.temporal, maxWaitMs: deps.maxWaitMs });
  await app.register(v1InvestigationRoutes, {
    temporal: deps.temporal,
    blobs: deps.blobs,
    registry: deps.registry,
    maxFileBytes: Math.max(0, ...deps.registry.list().map((engine) => engine.manifest.sizelimit)),
    temporalUiUrl: deps.temporalUiUrl ?? 'http://localhost:8233',
    namespace: deps.namespace ?? 'default',
    notify: deps.notify ?? { webhookAllow: [], slackChannels: [] },
    maxWaitMs: deps.maxWaitMs,
  });
  await app.register(scheduleRoutes, { schedules: new DocketSchedules(deps.temporal, deps.queuePrefix ?? '') });
  // Findings answered without a remediation start nothing in Temporal: this gateway remembers the newest for the console.
  const findings = new FindingLedger();
  await app.register(complianceRoutes, { ...deps.compliance, temporal: deps.temporal, registry: deps.registry, ledger: findings });
  await app.register(findingsRoutes, { temporal: deps.temporal, ledger: findings });
  await app.register(statsRoutes, { temporal: deps.temporal });
  await app.register(consoleRoutes);
  // TheHive's and cortex4py's Cortex API, in Cortex's shapes and error format (README, "TheHive and cortex4py").
  await app.register(cortexApiRoutes, { prefix: '/api', temporal: deps.temporal, blobs: deps.blobs, registry: deps.registry, maxWaitMs: deps.maxWaitMs });
  await app.register(vendorRoutes);
  if (deps.slack) {
    await app.register(slackPlugin, {
      ...deps.slack, temporal: deps.temporal, registry: deps.registry, runners: deps.runners, blobs: deps.blobs,
      schedules: new DocketSchedules(deps.temporal, deps.queuePrefix ?? ''),
    });
  }
  return app;
}
