import { normalize } from '../../../core/chatops';
import type { BlobRef } from '../../../core/investigation';
import { formatBytes } from '../../../core/units';
import { escape, startingMessage } from '../../../infra/slack-messages';
import { type Conversation, SlackRefusal } from '../conversation';
import type { SlackDeps } from '../deps';
import { fetchSharedFile, fileLimit } from '../files';
import { startOnce } from '../start';

/** Files in one message that are analyzed; Slack allows ten. */
const MAX_FILES = 10;

/**
 * Files shared with the bot: each downloaded with the bot token into the blob store, then one
 * investigation of them all (and of any observables in the message).
 */
export async function analyzeFiles(files: Array<{ id: string }>, text: string, conversation: Conversation, deps: SlackDeps): Promise<void> {
  const wanted = files.slice(0, MAX_FILES);
  const limit = fileLimit(deps.registry);
  await startOnce(deps, conversation, startingMessage(`:mag: Investigating ${wanted.length === 1 ? 'the file' : `${wanted.length} files`} from <@${conversation.user}>…`), async () => {
    const stored: BlobRef[] = [];
    const refused: string[] = [];
    for (const file of wanted) {
      try {
        stored.push(await fetchSharedFile(file.id, { client: conversation.client, botToken: deps.settings.botToken, blobs: deps.blobs, limit, apiUrl: deps.settings.apiUrl }));
      } catch (error) {
        if (!(error instanceof SlackRefusal)) throw error;
        refused.push(error.message);
      }
    }
    if (refused.length) {
      deps.log.info(`slack: files from ${conversation.user} refused: ${refused.join('; ')}`);
      await conversation.whisper(`${refused.map(escape).join('. ')}.${stored.length ? ' I analyze the others.' : ''}`);
    }
    if (!stored.length) return undefined;
    deps.log.info(`slack: ${stored.length} file(s) from ${conversation.user} stored (${formatBytes(stored.reduce((sum, file) => sum + file.size, 0))})`);
    const words = normalize(text);
    return { workflow: 'investigation', input: { files: stored, text: words || undefined } };
  });
}
