import type { Interaction, InteractionKind } from '../../core/chatops';
import { RequestRefused } from '../../contract/client';
import { ApiError } from '../errors';
import { escape } from '../../infra/slack-messages';
import { type Conversation, SlackRefusal } from './conversation';
import type { SlackDeps } from './deps';
import { analyze } from './handlers/analyze';
import { engines } from './handlers/engines';
import { help } from './handlers/help';
import { jobs } from './handlers/jobs';
import { run } from './handlers/run';
import { schedules } from './handlers/schedules';
import { seen } from './handlers/seen';
import { status } from './handlers/status';

type Handler<K extends InteractionKind> = (interaction: Extract<Interaction, { kind: K }>, conversation: Conversation, deps: SlackDeps) => Promise<void>;

/** One handler per lexicon entry. */
const HANDLERS: { [K in InteractionKind]: Handler<K> } = { analyze, status, jobs, engines, run, schedules, seen, help };

/**
 * Carries out one interaction, after the listener has acked Slack. A failure becomes a few words
 * to the asker and a log line, never silence.
 */
export async function dispatch(interaction: Interaction, conversation: Conversation, deps: SlackDeps): Promise<void> {
  await guarded(conversation, deps, interaction.kind, () => (HANDLERS[interaction.kind] as Handler<InteractionKind>)(interaction, conversation, deps));
}

export async function guarded(conversation: Conversation, deps: SlackDeps, what: string, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (error instanceof SlackRefusal || (error instanceof ApiError && error.statusCode < 500) || error instanceof RequestRefused) {
      await conversation.whisper(escape(error.message)).catch(() => undefined);
      return;
    }
    deps.log.error(`slack: ${what} for ${conversation.user} in ${conversation.channel} failed: ${(error as Error).stack ?? error}`);
    await conversation.whisper(`Sorry, that failed: ${escape((error as Error).message.split('\n')[0])}. It is in Docket's log.`).catch(() => undefined);
  }
}
