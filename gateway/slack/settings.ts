import type { Config } from '../../core/config';
import type { Links } from '../../infra/slack-messages';

/** Slack as the configuration turns it on; see the README's "Slack" section. */
export interface SlackSettings {
  botToken: string;
  /** HTTP mode: requests to /slack/events are verified with it. */
  signingSecret?: string;
  /** Socket Mode, which then replaces HTTP mode. */
  appToken?: string;
  /** Channel ids where anyone may ask; empty: every channel. Their members may also ask elsewhere (donbot's rule). */
  channels: string[];
  /** User ids who may press approval buttons (and run responders with `run`). */
  approvers: string[];
  apiUrl?: string;
  links: Links;
}

export type SlackSetup = { on: true; settings: SlackSettings } | { on: false; why: string };

const list = (value: string) => value.split(',').map((item) => item.trim()).filter(Boolean);

/** What the gateway needs to serve Slack, or why it does not. */
export function slackSetup(config: Config): SlackSetup {
  if (!config.SLACK_BOT_TOKEN) {
    const partial = config.SLACK_SIGNING_SECRET || config.SLACK_APP_TOKEN ? ' (a signing secret or app token is set, but no bot token)' : '';
    return { on: false, why: `Slack is off${partial}: set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode) to turn it on` };
  }
  if (!config.SLACK_SIGNING_SECRET && !config.SLACK_APP_TOKEN) {
    return { on: false, why: 'Slack is off: SLACK_BOT_TOKEN is set, but Slack requests cannot be verified without SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode); the worker still posts to Slack threads' };
  }
  // A bot token here is the usual slip; Slack would refuse it on every reconnect, for ever, in the log only.
  if (config.SLACK_APP_TOKEN && !config.SLACK_APP_TOKEN.startsWith('xapp-')) {
    return { on: false, why: 'Slack is off: SLACK_APP_TOKEN is not an app-level token (those start with xapp-): create one with the connections:write scope under Basic Information → App-Level Tokens, or unset it to use HTTP mode' };
  }
  return {
    on: true,
    settings: {
      botToken: config.SLACK_BOT_TOKEN,
      signingSecret: config.SLACK_SIGNING_SECRET,
      appToken: config.SLACK_APP_TOKEN,
      channels: list(config.DOCKET_SLACK_CHANNELS),
      approvers: list(config.DOCKET_SLACK_APPROVERS),
      apiUrl: config.DOCKET_SLACK_API_URL,
      links: slackLinks(config),
    },
  };
}

export function slackLinks(config: Config): Links {
  return { console: config.consoleUrl, temporalUi: config.temporalUiUrl, namespace: config.TEMPORAL_NAMESPACE };
}
