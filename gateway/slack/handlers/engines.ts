import type { Interaction } from '../../../core/chatops';
import { formatBytes } from '../../../core/units';
import { listEngines } from '../../engine-routes';
import { escape, listed, plain } from '../../../infra/slack-messages';
import type { Conversation } from '../conversation';
import type { SlackDeps } from '../deps';

/** `engines`: each engine, what it accepts, and whether its image is on the Docker host. */
export async function engines(_interaction: Extract<Interaction, { kind: 'engines' }>, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const { engines: list, errors } = await listEngines(deps.registry, deps.runners);
  const lines = list.map((engine) => {
    const image = engine.imagePresent === false ? ' :warning: image missing' : engine.imagePresent === null ? ' (Docker did not answer)' : '';
    const size = engine.accepts.includes('file') ? `, files up to ${formatBytes(engine.sizelimit)}` : '';
    return `• *${escape(engine.name)}* (${engine.kind}) — ${escape(engine.description || 'no description')}; accepts ${engine.accepts.join(', ')}${size}${image}`;
  });
  if (errors.length) lines.push(`:warning: ${errors.length} manifest(s) skipped: ${escape(errors.join('; '))}`);
  await conversation.answer(plain(lines.length ? `Engines:\n${listed(lines)}` : 'No engine is loaded.'));
}
