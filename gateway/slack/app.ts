import { App, type Authorize, type BlockButtonAction, LogLevel, type Logger as BoltLogger, SocketModeReceiver } from '@slack/bolt';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../infra/log';
import { slackWebClient } from '../../infra/slack-client';
import { SlackAccess } from './access';
import { APPROVE_ACTION, REJECT_ACTION } from '../../infra/slack-messages';
import type { SlackDeps } from './deps';
import { SLASH_COMMAND } from './handlers/help';
import { approvalListener } from './listeners/approval';
import { commandListener } from './listeners/command';
import { directMessageListener } from './listeners/direct-message';
import { mentionListener } from './listeners/mention';
import { FastifyReceiver, SLACK_EVENTS_PATH } from './receiver';
import { WorkQueue } from './work-queue';

export type SlackPluginOptions = Omit<SlackDeps, 'access' | 'work'>;

/** Acked requests worked on at once, and waiting at most; past that a request is turned away politely. */
const WORK_PARALLEL = 4;
const WORK_WAITING = 1000;

/**
 * How the Socket Mode client retries `apps.connections.open`, which it calls at start and at every
 * reconnect (Slack refreshes connections every few hours). Docket's other Slack calls fail fast, but
 * giving up here stops Socket Mode for good (the client does not try again after a failed reconnect),
 * so a proxy or firewall that is down for minutes is waited out: 30 s apart at most, for about an hour.
 */
const CONNECTION_RETRIES = { retries: 120, factor: 1.3, minTimeout: 1_000, maxTimeout: 30_000 };

/**
 * Slack on the gateway: a Bolt app with one listener per interaction. HTTP mode serves
 * `/slack/events` on the gateway's port; with an app token, Socket Mode connects out to Slack
 * instead (no public URL needed) and the route is not served.
 */
export async function slackPlugin(app: FastifyInstance, options: SlackPluginOptions): Promise<void> {
  const { settings, log } = options;
  const deps: SlackDeps = { ...options, access: new SlackAccess(settings.channels, log), work: new WorkQueue(WORK_PARALLEL, WORK_WAITING) };
  const identity = botIdentity(settings.botToken, settings.apiUrl, log);
  const common = {
    authorize: identity.authorize,
    logger: boltLogger(log),
    clientOptions: { slackApiUrl: slackWebClient(settings.botToken, settings.apiUrl).slackApiUrl, retryConfig: { retries: 1 }, timeout: 10_000 },
    // Bolt would keep per-conversation state in memory for every channel; Docket keeps none.
    convoStore: false as const,
  };

  let bolt: App;
  if (settings.appToken) {
    // Built here rather than by Bolt so that its own Web API client (which asks for the WebSocket URL)
    // gets the configured Slack address with the patient retries above instead of Bolt's client options.
    const receiver = new SocketModeReceiver({
      appToken: settings.appToken,
      logger: common.logger,
      installerOptions: { clientOptions: { ...common.clientOptions, retryConfig: CONNECTION_RETRIES } },
    });
    bolt = new App({ ...common, receiver, socketMode: true });
    app.addHook('onReady', async () => {
      // Connecting is not waited for: Slack being unreachable must not keep the gateway from serving.
      bolt.start().then(
        () => log.info('slack: on, connected in Socket Mode'),
        (error) => log.error(`slack: Socket Mode could not connect: ${(error as Error).message}`),
      );
    });
    app.addHook('onClose', async () => { await bolt.stop().catch(() => undefined); });
  } else {
    const receiver = new FastifyReceiver({ signingSecret: settings.signingSecret!, log });
    bolt = new App({ ...common, receiver });
    await app.register(receiver.routes);
  }
  bolt.error(async (error) => log.error(`slack: ${error.message}`));
  bolt.event('app_mention', mentionListener(deps));
  bolt.message(directMessageListener(deps));
  bolt.command(SLASH_COMMAND, commandListener(deps));
  bolt.action<BlockButtonAction>({ action_id: APPROVE_ACTION }, approvalListener(deps));
  bolt.action<BlockButtonAction>({ action_id: REJECT_ACTION }, approvalListener(deps));

  identity.lookUp().then((bot) => {
    const mode = settings.appToken ? 'Socket Mode' : `HTTP at ${SLACK_EVENTS_PATH}`;
    const restricted = settings.channels.length ? `channels ${settings.channels.join(', ')} and their members` : 'every channel';
    log.info(`slack: on (${mode}) as ${bot.botUserId ?? 'an unknown bot user'}; requests from ${restricted}; ${settings.approvers.length} approver(s)`);
  });
}

/**
 * Bolt's authorize for one workspace: the bot token, plus the bot's own ids (so Bolt ignores the
 * bot's own messages), looked up once with auth.test. Bolt runs it before acking each request, so a
 * failed lookup is not cached: it is tried again on the next request while the token still works.
 */
function botIdentity(botToken: string, apiUrl: string | undefined, log: Logger) {
  const client = slackWebClient(botToken, apiUrl);
  let pending: ReturnType<typeof client.auth.test> | undefined;
  const lookUp = async (): Promise<{ botUserId?: string; botId?: string }> => {
    pending ??= client.auth.test();
    try {
      const answer = await pending;
      return { botUserId: answer.user_id, botId: answer.bot_id };
    } catch (error) {
      pending = undefined;
      log.warn(`slack: auth.test failed (${(error as Error).message}); check SLACK_BOT_TOKEN`);
      return {};
    }
  };
  const authorize: Authorize<boolean> = async () => ({ botToken, ...(await lookUp()) });
  return { lookUp, authorize };
}

function boltLogger(log: Logger): BoltLogger {
  const line = (parts: unknown[]) => `slack: ${parts.map((part) => (part instanceof Error ? part.message : String(part))).join(' ')}`;
  return {
    debug: (...parts) => log.debug(line(parts)),
    info: (...parts) => log.info(line(parts)),
    warn: (...parts) => log.warn(line(parts)),
    error: (...parts) => log.error(line(parts)),
    setLevel: () => undefined,
    getLevel: () => LogLevel.DEBUG,
    setName: () => undefined,
  };
}
