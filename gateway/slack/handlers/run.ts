import type { Interaction } from '../../../core/chatops';
import { escape, startingMessage } from '../blocks';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';
import { startOnce } from '../start';

/**
 * `run <engine> <args>`: one engine run (CloudPassage's containerized tasks), whose output the
 * worker posts when it ends. A responder acts on the world without the policy's approval step, so
 * only approvers may run one from chat.
 */
export async function run(interaction: Extract<Interaction, { kind: 'run' }>, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const manifest = deps.registry.get(interaction.engine);
  if (!manifest) {
    await conversation.whisper(`There is no engine ${escape(interaction.engine)}; the engines are: ${deps.registry.names().join(', ') || 'none'}.`);
    return;
  }
  if (manifest.kind === 'responder' && !deps.settings.approvers.includes(conversation.user)) {
    deps.log.warn(`slack: ${conversation.user} asked to run responder ${manifest.name} but is not in DOCKET_SLACK_APPROVERS; refused`);
    await conversation.whisper(`Sorry <@${conversation.user}>, ${escape(manifest.name)} is a responder: only approvers may run it from Slack.`);
    return;
  }
  const command = [interaction.engine, ...interaction.args].join(' ');
  await startOnce(deps, conversation, startingMessage(`:gear: Running \`${escape(command)}\` for <@${conversation.user}>…`), async () => ({
    workflow: 'task',
    input: { engine: interaction.engine, args: interaction.args },
  }));
}
