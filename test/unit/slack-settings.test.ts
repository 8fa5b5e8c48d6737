import { loadConfig } from '../../core/config';
import { slackSetup } from '../../gateway/slack/settings';

const setup = (env: Record<string, string>) => slackSetup(loadConfig(env));

describe('Slack settings', () => {
  it('turns Socket Mode on with a bot token and an app-level token, and HTTP mode with a signing secret', () => {
    const socket = setup({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xapp-1-A1-2-abc', SLACK_SIGNING_SECRET: 'secret' });
    expect(socket).toMatchObject({ on: true, settings: { appToken: 'xapp-1-A1-2-abc' } });
    expect(setup({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_SIGNING_SECRET: 'secret' })).toMatchObject({ on: true, settings: { appToken: undefined } });
  });

  it('stays off, saying which token to create, when SLACK_APP_TOKEN holds something other than an app-level token', () => {
    const answer = setup({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xoxb-1' });
    expect(answer.on).toBe(false);
    expect(answer.on === false && answer.why).toContain('connections:write');
  });

  it('stays off without a bot token, naming what is missing', () => {
    const answer = setup({ SLACK_APP_TOKEN: 'xapp-1-A1-2-abc' });
    expect(answer.on === false && answer.why).toContain('set SLACK_BOT_TOKEN');
  });
});
