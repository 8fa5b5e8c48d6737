import type { Interaction } from '../../../core/chatops';
import type { EngineManifest } from '../../../core/engine-manifest';
import { extractObservables } from '../../../core/observables';
import { escape, showObservable, startingMessage } from '../../../infra/slack-messages';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';
import { startOnce } from '../start';

/**
 * `run <engine> <args>`: one engine run (CloudPassage's containerized tasks), whose output the
 * worker posts when it ends. A responder acts on the world, so it is never such a run: only an
 * approver (Slack's respond role) may ask for one, and it then becomes an investigation's response,
 * which waits for an approver's button unless the policy says `approval: none`.
 */
export async function run(interaction: Extract<Interaction, { kind: 'run' }>, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const manifest = deps.registry.get(interaction.engine);
  if (!manifest) {
    await conversation.whisper(`There is no engine ${escape(interaction.engine)}; the engines are: ${deps.registry.names().join(', ') || 'none'}.`);
    return;
  }
  if (manifest.kind === 'responder') {
    await respond(manifest, interaction.args, conversation, deps);
    return;
  }
  const command = [interaction.engine, ...interaction.args].join(' ');
  await startOnce(deps, conversation, startingMessage(`:gear: Running \`${escape(command)}\` for <@${conversation.user}>…`), async () => ({
    workflow: 'task',
    input: { engine: interaction.engine, args: interaction.args },
  }));
}

async function respond(manifest: EngineManifest, args: string[], conversation: Conversation, deps: SlackDeps): Promise<void> {
  if (!deps.settings.approvers.includes(conversation.user)) {
    deps.log.warn(`slack: ${conversation.user} asked to run responder ${manifest.name} but is not in DOCKET_SLACK_APPROVERS; refused`);
    await conversation.whisper(`Sorry <@${conversation.user}>, ${escape(manifest.name)} is a responder: only approvers may run it from Slack (DOCKET_SLACK_APPROVERS), and it then waits for approval. Ask one of them, or ask to be made an approver.`);
    return;
  }
  const accepts: string[] = manifest.accepts;
  const targets = extractObservables(args.join(' ')).filter((observable) => accepts.includes(observable.type));
  if (!targets.length) {
    await conversation.whisper(`${escape(manifest.name)} acts on ${accepts.join(', ')}: give one, for example \`run ${escape(manifest.name)} hxxps://evil[.]example/login\`.`);
    return;
  }
  const what = targets.length === 1 ? `${targets[0].type} ${showObservable(targets[0].data)}` : `${targets.length} observables`;
  await startOnce(deps, conversation, startingMessage(`:shield: <@${conversation.user}> asks to run ${escape(manifest.name)} on ${what}; it waits for approval unless the policy says otherwise…`), async () => ({
    workflow: 'investigation',
    // No analyzer: the approver asked for this responder alone.
    input: { observables: targets, engines: [], respond: [manifest.name] },
  }));
}
