import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type WorkflowBundleOption } from '@temporalio/worker';
import Docker from 'dockerode';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics } from 'prom-client';
import { BlobStore } from '../infra/blob-store';
import { DockerRunner } from '../activities/docker-runner';
import { EngineRegistry } from '../infra/engine-registry';
import { ProcessRunner } from '../activities/process-runner';
import { ResultCache } from '../infra/result-cache';
import type { Logger } from '../infra/log';
import { DocketMetrics } from '../infra/metrics';
import { reconcileSchedules } from '../infra/schedule-control';
import { createSlackNotifier } from '../activities/slack-notifier';
import type { Config } from '../core/config';
import { settingList } from '../core/notify-targets';
import type { AuditSink } from '../gateway/audit';
import { anonymousPolicy } from '../gateway/auth';
import { loadComplianceAccounts } from '../gateway/compliance-routes';
import { KeyStore } from '../gateway/keys';
import { buildGateway } from '../gateway/server';
import { allowedHosts } from '../gateway/site-guard';
import { slackLinks, slackSetup } from '../gateway/slack/settings';
import { EngineWorkers } from '../workers/engine-workers';
import { createMainWorker } from '../workers/main-worker';
import { reapOrphans } from '../workers/reaper';
import { installRuntime } from '../workers/runtime';
import { SEARCH_ATTRIBUTES } from '../contract/messages';

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
  client: Client;
  docker: Docker;
  /** The Prometheus registry the gateway serves on /metrics. */
  metrics: DocketMetrics;
  gateway?: FastifyInstance;
  url?: string;
  engineWorkers?: EngineWorkers;
  /** Re-reads the engine manifests (SIGHUP). */
  reload(): Promise<void>;
  stop(): Promise<void>;
}

const REAP_EVERY_MS = 10 * 60_000;
const SEARCH_ATTRIBUTE_TYPES: Record<string, number> = { Keyword: 2, KeywordList: 7 };

/** Starts Docket's processes in this one process against the Temporal server at `config.temporalAddress`. */
export async function startSystem(options: SystemOptions): Promise<System> {
  const { config, log } = options;
  const env = options.env ?? process.env;
  installRuntime();
  const registry = await EngineRegistry.load(config.DOCKET_ENGINES_DIR);
  for (const error of registry.errors) log.warn(`engines: skipped ${error}`);
  const blobs = await new BlobStore(join(config.DOCKET_DATA_DIR, 'blobs')).init();
  const docker = new Docker();
  const clientConnection = await Connection.connect({ address: config.temporalAddress });
  const client = new Client({ connection: clientConnection, namespace: config.TEMPORAL_NAMESPACE });
  await ensureSearchAttributes(clientConnection, config.TEMPORAL_NAMESPACE, log);
  const taskQueue = `${config.DOCKET_QUEUE_PREFIX}${config.DOCKET_TASK_QUEUE}`;
  const metrics = new DocketMetrics();
  collectDefaultMetrics({ register: metrics.registry, prefix: 'docket_' });
  const stops: Array<() => Promise<void>> = [];

  let engineWorkers: EngineWorkers | undefined;
  let reconcile: (() => Promise<void>) | undefined;
  const runMain = options.workers !== false && options.mainWorker !== false;
  const runEngines = options.workers !== false && options.engineWorkers !== false;
  if (runMain || runEngines) {
    const maxAgeMs = Math.max(...registry.list().map((e) => e.manifest.timeout), 0) * 2 + 30 * 60_000;
    const reap = () => reapOrphans(docker, { maxAgeMs, log }).catch((error) => log.warn(`reaper: ${(error as Error).message}`));
    const reaper = runEngines ? setInterval(reap, REAP_EVERY_MS) : undefined;
    if (runEngines) {
      await reap();
      reaper?.unref();
    }
    const connection = await NativeConnection.connect({ address: config.temporalAddress });
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
    const mainDone = main?.run();
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
        registry, runner: new DockerRunner(docker, blobs, { egressNetwork: config.DOCKET_EGRESS_NETWORK, log }), blobs, log, env, only: config.engineFilter,
        cache: new ResultCache(join(config.DOCKET_DATA_DIR, 'cache')), metrics,
        processRunner: new ProcessRunner(blobs, config.DOCKET_PROCESS_RUNNER === 'on'),
      });
      await engineWorkers.start();
    }
    const workers = engineWorkers;
    stops.push(async () => {
      clearInterval(reaper);
      if (main?.getState() === 'RUNNING') main.shutdown();
      await Promise.all([mainDone, workers?.shutdown()]);
      await connection.close();
    });
  }

  let gateway: FastifyInstance | undefined;
  let url: string | undefined;
  if (options.gateway !== false) {
    const slack = slackSetup(config);
    if (!slack.on) log.info(slack.why);
    gateway = await buildGateway({
      client, blobs, registry, taskQueue, docker, metrics,
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
    registry, blobs, client, docker, metrics, gateway, url, engineWorkers,
    async reload() {
      if (engineWorkers) await engineWorkers.reload();
      else await registry.reload();
      log.info(`engines reloaded: ${registry.names().join(', ')}`);
      await reconcile?.();
    },
    async stop() {
      for (const stop of stops) await stop();
      await clientConnection.close();
    },
  };
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
