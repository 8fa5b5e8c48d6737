import type { WebClient } from '@slack/web-api';
import type { Logger } from '../../infra/log';

export type AccessDecision = { ok: true } | { ok: false; reason: string };

/** Membership is read from Slack at most this often per channel. */
const MEMBERS_TTL_MS = 60_000;
const MEMBERS_PAGES = 20;

/**
 * Who may ask Docket for work, as donbot decided it: anyone in an allowed channel, and members of
 * an allowed channel anywhere else the bot is (a direct message included). With no channel listed,
 * everyone may. Messages without a user (other bots, integrations) are never taken.
 */
export class SlackAccess {
  private readonly members = new Map<string, { users: Set<string>; at: number }>();

  constructor(private readonly channels: string[], private readonly log: Logger) {}

  async allows(client: WebClient, channel: string, user: string | undefined): Promise<AccessDecision> {
    if (!user) return { ok: false, reason: 'the message has no user' };
    if (!this.channels.length || this.channels.includes(channel)) return { ok: true };
    for (const allowed of this.channels) {
      if ((await this.membersOf(client, allowed)).has(user)) return { ok: true };
    }
    return { ok: false, reason: `${channel} is not an allowed channel and ${user} is a member of none` };
  }

  /** The polite words for a refusal, naming where to ask instead. */
  refusal(user: string): string {
    const where = this.channels.map((channel) => `<#${channel}>`).join(', ');
    return `Sorry <@${user}>, I only take requests in ${where}, or from members of ${this.channels.length > 1 ? 'those channels' : 'that channel'}. Ask there, or ask to be added.`;
  }

  private async membersOf(client: WebClient, channel: string): Promise<Set<string>> {
    const cached = this.members.get(channel);
    if (cached && Date.now() - cached.at < MEMBERS_TTL_MS) return cached.users;
    const users = new Set<string>();
    try {
      let cursor: string | undefined;
      for (let page = 0; page < MEMBERS_PAGES; page += 1) {
        const answer = await client.conversations.members({ channel, cursor, limit: 1000 });
        for (const member of answer.members ?? []) users.add(member);
        cursor = answer.response_metadata?.next_cursor || undefined;
        if (!cursor) break;
      }
    } catch (error) {
      // Refusing is the safe side; the log says which scope is missing.
      this.log.warn(`slack: cannot read the members of ${channel} (${(error as Error).message}); give the bot the channels:read and groups:read scopes and invite it there`);
      return cached?.users ?? users;
    }
    this.members.set(channel, { users, at: Date.now() });
    return users;
  }
}
