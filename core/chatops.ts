import { extractObservables } from './observables';

/**
 * What a chat message asks for (README.md, "Slack"). donbot read a message with a table of
 * patterns, first match wins; so does this lexicon, and the help text comes from the same table, so
 * the two cannot drift apart.
 */
export type Interaction =
  | { kind: 'analyze'; text: string }
  | { kind: 'status'; id: string }
  | { kind: 'jobs'; limit: number }
  | { kind: 'engines' }
  | { kind: 'run'; engine: string; args: string[] }
  | { kind: 'schedules' }
  | { kind: 'seen'; value: string }
  | { kind: 'help'; topic?: InteractionKind; problem?: string };

export type InteractionKind = Interaction['kind'];

interface LexiconEntry {
  kind: InteractionKind;
  usage: string;
  summary: string;
  /** The words that name this interaction; a message starting with one of them is meant for it. */
  keyword: RegExp;
  /** The whole message; when only the keyword matches, the answer is this entry's usage. */
  pattern: RegExp;
  read(match: RegExpExecArray): Interaction;
}

export const JOBS_DEFAULT = 10;
export const JOBS_MAX = 50;

export const LEXICON: readonly LexiconEntry[] = [
  {
    kind: 'analyze',
    usage: 'analyze <text with URLs, domains, IPs, hashes, mails, CVEs>',
    summary: 'investigates every observable in the text (defanged is fine: hxxps://evil[.]example)',
    keyword: /^(?:analy[sz]e|investigate|check)\b/i,
    pattern: /^(?:analy[sz]e|investigate|check)\s+(\S[\s\S]*)$/i,
    read: (match) => ({ kind: 'analyze', text: match[1].trim() }),
  },
  {
    kind: 'status',
    usage: 'status <investigation id>',
    summary: 'where an investigation or task is, or its result',
    keyword: /^status\b/i,
    pattern: /^status\s+(\S+)$/i,
    read: (match) => ({ kind: 'status', id: match[1] }),
  },
  {
    kind: 'jobs',
    usage: 'jobs [how many]',
    summary: `the most recent investigations (${JOBS_DEFAULT} unless asked, at most ${JOBS_MAX})`,
    keyword: /^(?:jobs|tasks)\b/i,
    pattern: /^(?:jobs|tasks)(?:\s+(\d{1,3}))?$/i,
    read: (match) => ({ kind: 'jobs', limit: Math.min(JOBS_MAX, Math.max(1, Number(match[1] ?? JOBS_DEFAULT))) }),
  },
  {
    kind: 'engines',
    usage: 'engines',
    summary: 'the analyzers and responders, what each accepts and whether its image is present',
    keyword: /^engines\b/i,
    pattern: /^engines$/i,
    read: () => ({ kind: 'engines' }),
  },
  {
    kind: 'run',
    usage: 'run <engine> [arguments]',
    summary: 'runs one engine with these arguments and posts what it printed',
    keyword: /^run\b/i,
    pattern: /^run\s+([a-z0-9][a-z0-9_-]*)(?:\s+([\s\S]*))?$/i,
    read: (match) => {
      const args = splitArguments(match[2] ?? '');
      if ('problem' in args) return { kind: 'help', topic: 'run', problem: args.problem };
      return { kind: 'run', engine: match[1].toLowerCase(), args: args.words };
    },
  },
  {
    kind: 'schedules',
    usage: 'schedules',
    summary: 'the schedules Docket runs, and when each runs next',
    keyword: /^schedules?\b/i,
    pattern: /^schedules?$/i,
    read: () => ({ kind: 'schedules' }),
  },
  {
    kind: 'seen',
    usage: 'seen <domain, URL, IP, hash, mail…> (quote a value with spaces)',
    summary: 'whether an investigation analyzed that value before (sent, or found as an artifact), newest first, with its verdict',
    // One value, or one quoted: "seen evil.example in the proxy logs" is a sentence to analyze, not a search.
    keyword: /^seen(?:\s*$|\s+["']|\s+\S+\s*$)/i,
    pattern: /^seen\s+(?:"([^"]+)"|'([^']+)'|(\S+))$/i,
    read: (match) => ({ kind: 'seen', value: (match[1] ?? match[2] ?? match[3]).trim() }),
  },
  {
    kind: 'help',
    usage: 'help [command]',
    summary: 'this list, or how to use one command',
    keyword: /^(?:help|\?)(?=\s|$)/i,
    pattern: /^(?:help|\?)(?:\s+(\S+))?$/i,
    read: (match) => {
      const topic = match[1] ? LEXICON.find((entry) => entry.keyword.test(match[1])) : undefined;
      if (match[1] && !topic) return { kind: 'help', problem: `there is no command ${match[1]}` };
      return { kind: 'help', topic: topic?.kind };
    },
  },
];

/**
 * The interaction a message asks for. Text without a command but with observables in it is an
 * analysis, as people paste an indicator and mention the bot; anything else gets the short help.
 */
export function parseInteraction(message: string): Interaction {
  const text = normalize(message);
  if (!text) return { kind: 'help' };
  for (const entry of LEXICON) {
    if (!entry.keyword.test(text)) continue;
    const match = entry.pattern.exec(text);
    if (match) return entry.read(match);
    return { kind: 'help', topic: entry.kind };
  }
  if (extractObservables(text, { limit: 1 }).length) return { kind: 'analyze', text };
  return { kind: 'help', problem: 'I did not understand that' };
}

/**
 * Slack's message text as a person typed it: without the leading mention of the bot, with links
 * unwrapped (`<http://evil.example|evil.example>` → `http://evil.example`) and entities decoded.
 */
export function normalize(message: string): string {
  return message
    .replace(/^(?:\s*<@[A-Z0-9]+(?:\|[^>]*)?>[\s,:]*)+/, '')
    .replace(/<((?:https?|ftp|mailto):[^|>]+)(?:\|[^>]*)?>/gi, (_, link: string) => link.replace(/^mailto:/i, ''))
    .replace(/<[#@!][^>|]*\|([^>]*)>/g, '$1')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u201c\u201d]/g, '"')
    .trim();
}

/** Arguments as a shell would split them: on spaces, except inside single or double quotes. */
export function splitArguments(text: string): { words: string[] } | { problem: string } {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (const char of text) {
    if (quote) {
      if (char === quote) quote = undefined;
      else word += char;
    } else if (char === '"' || char === "'") {
      quote = char;
      word ??= '';
    } else if (/\s/.test(char)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? '') + char;
    }
  }
  if (quote) return { problem: `a ${quote} quote is not closed` };
  if (word !== undefined) words.push(word);
  return { words };
}

/** The help text: every command, or one command's usage, after what went wrong if anything did. */
export function helpText(interaction: { topic?: InteractionKind; problem?: string } = {}, command = ''): string {
  const prefix = command ? `${command} ` : '';
  const lines: string[] = [];
  if (interaction.problem) lines.push(`${capitalize(interaction.problem)}.`);
  const topic = interaction.topic && interaction.topic !== 'help' ? LEXICON.find((entry) => entry.kind === interaction.topic) : undefined;
  if (topic) {
    lines.push(`Usage: \`${prefix}${topic.usage}\` — ${topic.summary}.`);
    return lines.join('\n');
  }
  lines.push('What I can do:');
  for (const entry of LEXICON) lines.push(`• \`${prefix}${entry.usage}\` — ${entry.summary}`);
  lines.push('Share a file with me (in a direct message, or mentioning me) and I analyze it too.');
  return lines.join('\n');
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
