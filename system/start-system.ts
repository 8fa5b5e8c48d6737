import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { WorkflowBundleOption } from '@temporalio/worker';
import Docker from 'dockerode';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics } from 'prom-client';
import type { BlobStore } from '../infra/blob-store';
import { openBlobStore } from '../infra/blob-store-open';
import { startRetentionSweeps } from '../infra/blob-retention';
import { EngineRegistry } from '../infra/engine-registry';
import { createRunners } from '../activities/runners';
import type { EngineRunners } from '../infra/engine-runner';
import type { Logger } from '../infra/log';
import { DocketMetrics } from '../infra/metrics';
import { reconcileSchedules } from '../infra/schedule-control';
import type { Config } from '../core/config';
import { settingList } from '../core/notify-targets';
import type { AuditSink } from '../gateway/audit';
import type { EngineWorkers } from '../workers/engine-workers';
import { DocketClient } from '../contract/client';
import { SEARCH_ATTRIBUTES } from '../contract/messages';
import { temporalTarget } from './temporal-connection';
import { temporalClientInterceptors } from './temporal-deadline';
import { applyRetention } from './temporal-namespace';

export interface SystemOptions {
  config: Config;
  log: Logger;
  env?: Record<string, string | undefined>;
  workflowBundle?: WorkflowBundleOption;
  /** Run the gateway (and listen on its port). */
  gateway?: boolean;
  /** Run the main worker and the engine workers (both unless one is turned off below). */
  workers?: boolean;
  mainWorker?: boolean;
  engineWorkers?: boolean;
  /** Where the gateway's audit lines go; stdout unless given. */
  audit?: AuditSink;
}

export interface System {
  registry: EngineRegistry;
  blobs: BlobStore;
  /** The SDK client, for what is not Docket's to type (tests set up situations with it). */
  client: Client;
  /** The one typed client every entry point starts and reads workflows through. */
  temporal: DocketClient;
  docker: Docker;
  /** The engine runners (one per manifest `runner:` value) the engine workers, the reaper and the gateway use. */
  runners: EngineRunners;
  /** The Prometheus registry the gateway serves on /metrics. */
  metrics: DocketMetrics;
  gateway?: FastifyInstance;
  url?: string;
  engineWorkers?: EngineWorkers;
  /** The state of each Temporal worker this process runs (`main`, `engine <name>`): RUNNING while it polls. */
  workerStates(): Array<{ worker: string; state: string }>;
  /** Re-reads the engine manifests (SIGHUP). */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

const REAP_EVERY_MS = 10 * 60_000;
const SEARCH_ATTRIBUTE_TYPES: Record<string, number> = { Keyword: 2, KeywordList: 7 };

/** Starts Docket's processes in this one process against the Temporal server at `config.temporalAddress`. */
export async function startSystem(options: SystemOptions): Promise<System> {
  const { log } = options;
  const env = options.env ?? process.env;
  const target = temporalTarget(options.config, env);
  // A profile may name the namespace; everything below reads it from the config.
  const config: Config = { ...options.config, TEMPORAL_NAMESPACE: target.namespace };
  const registry = await EngineRegistry.load(config.DOCKET_ENGINES_DIR);
  for (const error of registry.errors) log.warn(`engines: skipped ${error}`);
  const { blobs, cache } = await openBlobStore(config);
  const docker = dockerClient(env);
  const runners = createRunners({
    docker, blobs, log, egressNetwork: config.DOCKET_EGRESS_NETWORK, processRunner: config.DOCKET_PROCESS_RUNNER === 'on',
    warmFolders: config.DOCKET_WARM_FOLDERS,
  });
  const clientConnection = await Connection.connect({ ...target.connection, interceptors: temporalClientInterceptors() });
  const client = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });
  await ensureSearchAttributes(clientConnection, config.TEMPORAL_NAMESPACE, log);
  await applyRetention(clientConnection, config.TEMPORAL_NAMESPACE, config.retentionMs, log);
  const taskQueue = `${config.DOCKET_QUEUE_PREFIX}${config.DOCKET_TASK_QUEUE}`;
  const docket = new DocketClient(client, taskQueue, blobs);
  const runMain = options.workers !== false && options.mainWorker !== false;
  const runEngines = options.workers !== false && options.engineWorkers !== false;
  const metrics = new DocketMetrics(undefined, { http: options.gateway !== false, engines: runEngines });
  collectDefaultMetrics({ register: metrics.registry, prefix: 'docket_' });
  const stops: Array<() => Promise<void>> = [];

  let engineWorkers: EngineWorkers | undefined;
  let reconcile: (() => Promise<void>) | undefined;
  let mainWorker: { getState(): string } | undefined;
  if (runMain || runEngines) {
    // Each role loads only its own code: a gateway never loads the worker SDK, its bundler or the
    // activities, and a worker never loads fastify and the routes (about a third of a role's start).
    const { NativeConnection } = await import('@temporalio/worker');
    const { installRuntime } = await import('../workers/runtime');
    const { startReaper } = await import('../workers/reaper');
    const { createMainWorker } = await import('../workers/main-worker');
    const { EngineWorkers } = await import('../workers/engine-workers');
    const { createSlackNotifier } = await import('../activities/slack-notifier');
    const { slackLinks } = await import('../gateway/slack/settings');
    installRuntime();
    const maxAgeMs = Math.max(...registry.list().map((e) => e.manifest.timeout), 0) * 2 + 30 * 60_000;
    const reaper = runEngines ? await startReaper(runners.list(), { maxAgeMs, log, everyMs: REAP_EVERY_MS }) : undefined;
    const connection = await NativeConnection.connect(target.connection);
    const main = runMain
      ? await createMainWorker({
        connection, namespace: config.TEMPORAL_NAMESPACE, taskQueue, queuePrefix: config.DOCKET_QUEUE_PREFIX,
        registry, log, workflowBundle: options.workflowBundle,
        policyFile: config.DOCKET_POLICY_FILE,
        // The worker only posts to Slack, so the bot token is all it needs.
        ...(config.SLACK_BOT_TOKEN
          ? createSlackNotifier({
            botToken: config.SLACK_BOT_TOKEN, apiUrl: config.DOCKET_SLACK_API_URL, blobs, links: slackLinks(config), log,
            channels: settingList(config.DOCKET_SLACK_CHANNELS),
          })
          : {}),
        blobs,
        webhook: {
          url: config.DOCKET_WEBHOOK_URL,
          secret: config.DOCKET_WEBHOOK_SECRET,
          allow: config.DOCKET_WEBHOOK_ALLOW.split(',').map((prefix) => prefix.trim()).filter(Boolean),
        },
      })
      : undefined;
    mainWorker = main;
    const mainDone = main?.run();
    // Every installation runs a main worker somewhere; replicas sweeping at once delete the same keys, harmlessly.
    const stopSweeps = main ? startRetentionSweeps({ blobs, cache, retentionMs: config.retentionMs, log }) : undefined;
    if (main) {
      // Schedules start workflows on this worker's queue, so the process running it keeps them in step with the files.
      reconcile = () => reconcileSchedules({
        client, dir: config.DOCKET_SCHEDULES_DIR, taskQueue, queuePrefix: config.DOCKET_QUEUE_PREFIX, log, engines: registry.names(),
        responders: registry.list().filter((engine) => engine.manifest.kind === 'responder').map((engine) => engine.manifest.name),
        webhookAllow: [config.DOCKET_WEBHOOK_URL ?? '', ...config.DOCKET_WEBHOOK_ALLOW.split(',').map((prefix) => prefix.trim())].filter(Boolean),
      }).then(() => undefined, (error) => log.warn(`schedules: not reconciled: ${(error as Error).message}`));
      await reconcile();
    }
    if (runEngines) {
      engineWorkers = new EngineWorkers({
        connection, namespace: config.TEMPORAL_NAMESPACE, queuePrefix: config.DOCKET_QUEUE_PREFIX,
        registry, runners, blobs, log, env, only: config.engineFilter,
        cache, metrics,
      });
      await engineWorkers.start();
    }
    const workers = engineWorkers;
    stops.push(async () => {
      await reaper?.stop();
      await stopSweeps?.();
      if (main?.getState() === 'RUNNING') main.shutdown();
      await Promise.all([mainDone, workers?.shutdown()]);
      // After the last job answered: removals still under way finish, and warm job folders go.
      await Promise.all(runners.list().map((runner) => runner.close?.()));
      await connection.close();
    });
  }

  let gateway: FastifyInstance | undefined;
  let url: string | undefined;
  if (options.gateway !== false) {
    const { anonymousPolicy } = await import('../gateway/auth');
    const { loadComplianceAccounts } = await import('../gateway/compliance-routes');
    const { KeyStore } = await import('../gateway/keys');
    const { buildGateway } = await import('../gateway/server');
    const { allowedHosts } = await import('../gateway/site-guard');
    const { slackSetup } = await import('../gateway/slack/settings');
    const slack = slackSetup(config);
    if (!slack.on) log.info(slack.why);
    gateway = await buildGateway({
      temporal: docket, blobs, registry, runners, metrics,
      temporalUiUrl: config.temporalUiUrl, namespace: config.TEMPORAL_NAMESPACE,
      keys: new KeyStore(join(config.DOCKET_DATA_DIR, 'keys.json')),
      anonymous: anonymousPolicy(config.DOCKET_ANONYMOUS, config.DOCKET_HOST),
      allowedHosts: allowedHosts(config.DOCKET_ALLOWED_HOSTS, config.DOCKET_HOST),
      notify: {
        webhookUrl: config.DOCKET_WEBHOOK_URL,
        webhookAllow: settingList(config.DOCKET_WEBHOOK_ALLOW),
        slackChannels: settingList(config.DOCKET_SLACK_CHANNELS),
      },
      rateLimit: config.DOCKET_RATE_LIMIT,
      maxInflightStarts: config.DOCKET_MAX_INFLIGHT_STARTS,
      maxWaitMs: config.maxWaitMs,
      audit: options.audit,
      queuePrefix: config.DOCKET_QUEUE_PREFIX,
      compliance: { accounts: await loadComplianceAccounts(config.DOCKET_ACCOUNTS_FILE), log },
      slack: slack.on ? { settings: slack.settings, log } : undefined,
    });
    url = await gateway.listen({ host: config.DOCKET_HOST, port: config.DOCKET_PORT });
    const app = gateway;
    stops.unshift(() => app.close());
  }

  return {
    registry, blobs, client, temporal: docket, docker, runners, metrics, gateway, url, engineWorkers,
    workerStates() {
      return [
        ...(mainWorker ? [{ worker: 'main', state: mainWorker.getState() }] : []),
        ...(engineWorkers?.states().map(({ engine, state }) => ({ worker: `engine ${engine}`, state })) ?? []),
      ];
    },
    async reload() {
      if (engineWorkers) await engineWorkers.reload();
      else await registry.reload();
      log.info(`engines reloaded: ${registry.names().join(', ')}`);
      await reconcile?.();
    },
    async stop() {
      for (const stop of stops) await stop();
      await clientConnection.close();
      await blobs.close();
    },
  };
}

/**
 * The Docker engine named by DOCKER_HOST in `env`. dockerode reads DOCKER_HOST (tcp, TLS, ssh) from the
 * process's environment only, so a unix socket given in `env` (a test running engine workers for two
 * daemons in one process) is passed explicitly; any other DOCKER_HOST must be the process's own.
 */
function dockerClient(env: Record<string, string | undefined>): Docker {
  const host = env.DOCKER_HOST;
  if (!host || host === process.env.DOCKER_HOST) return new Docker();
  if (host.startsWith('unix://')) return new Docker({ socketPath: host.slice('unix://'.length) });
  throw new Error(`DOCKER_HOST=${host} differs from this process's own DOCKER_HOST: set it in the process environment, where dockerode reads tcp, TLS and ssh settings`);
}

/** Registers Docket's search attributes on a cluster that lacks them (the dev server has them already). */
async function ensureSearchAttributes(connection: Connection, namespace: string, log: Logger): Promise<void> {
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const known = new Set([...Object.keys(existing.customAttributes ?? {}), ...Object.keys(existing.systemAttributes ?? {})]);
    const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([name]) => !known.has(name));
    if (!missing.length) return;
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, SEARCH_ATTRIBUTE_TYPES[type]])),
    });
    log.info(`temporal: registered search attributes ${missing.map(([name]) => name).join(', ')}`);
  } catch (error) {
    log.warn(`temporal: cannot check Docket's search attributes (${(error as Error).message}); register them with: ${Object.entries(SEARCH_ATTRIBUTES).map(([n, t]) => `temporal operator search-attribute create --name ${n} --type ${t}`).join('; ')}`);
  }
}
