import { type InvestigationInput, objectLabel, type Subject } from './investigation';
import { extractObservables, normalizeIp, refang } from './observables';
import { sha256Hex } from './sha256';

/**
 * "Have we seen this before?" (docs/investigations.md, "Seen before"). Every investigation lists the
 * values it analyzed, given or found as artifacts, in the search attribute `DocketObservables`, and
 * a search looks one value up there. Both sides go through `indexValue`, so they agree on one form:
 *
 * - refanged, trimmed, in lower case, IP addresses in their canonical form. A URL's path is lower-cased
 *   too, although it is case-sensitive: SQLite visibility (the dev server's) folds case when it
 *   matches KeywordList values, so only a case-blind index finds the same investigations on every
 *   store; `/Gate.php` and `/gate.php` are one value to a search;
 * - every character outside a small safe set (letters, digits and `-._~:/?#[]@!$&()*+,;=%`) written
 *   as `%xx` of its UTF-8 bytes, so no indexed value and no search can hold a quote, a backslash, a
 *   space or a character Temporal's query language or a visibility store's tokenizer treats specially;
 * - a result longer than INDEX_VALUE_CHARS becomes `sha256:` and the first 32 hex digits of its
 *   SHA-256: a long URL is still found by the whole URL, at the cost of 39 characters.
 *
 * Temporal refuses (and fails the workflow for) a search attribute whose JSON is over 2 KB
 * (`frontend.searchAttributesSizeOfValueLimit`), so an investigation indexes its values in the order
 * it admitted them (what was sent first, then artifacts) up to INDEX_BYTES; the rest are analyzed and
 * reported but not indexed, and the report and memo say how many were (`observablesIndexed`).
 */

/** Longest value indexed as it is; longer ones are indexed by their digest. */
export const INDEX_VALUE_CHARS = 80;
/** The JSON of DocketObservables stays within this, under Temporal's default 2048-byte limit. */
export const INDEX_BYTES = 2000;
/** Longest value a search accepts, as long as the longest observable (core/investigation.ts). */
export const MAX_SEARCH_CHARS = 8192;
/** What an indexed value, and so a search term, can consist of. */
export const INDEX_VALUE = /^[a-z0-9\-._~:/?#[\]@!$&()*+,;=%]{1,80}$/;

const SAFE_CHAR = /^[a-z0-9\-._~:/?#[\]@!$&()*+,;=%]$/;

/** The one form a value is indexed and searched in; `undefined` for a value that is empty once trimmed. */
export function indexValue(value: string): string | undefined {
  const normalized = normalizeValue(value);
  if (!normalized) return undefined;
  const encoded = encodeUnsafe(normalized);
  return encoded.length <= INDEX_VALUE_CHARS ? encoded : `sha256:${sha256Hex(encoded).slice(0, 32)}`;
}

function normalizeValue(value: string): string {
  const lower = refang(value).trim().toLowerCase();
  return normalizeIp(lower) ?? lower;
}

function encodeUnsafe(value: string): string {
  let encoded = '';
  for (const char of value) {
    if (SAFE_CHAR.test(char)) {
      encoded += char;
      continue;
    }
    for (const byte of new TextEncoder().encode(char)) encoded += `%${byte.toString(16).padStart(2, '0')}`;
  }
  return encoded;
}

export interface ObservableIndex {
  /** DocketObservables: the indexed values, in the order the subjects were admitted. */
  values: string[];
  /** DocketObservableTypes: every type analyzed (`file` for files), artifacts' too. */
  types: string[];
  /** How many distinct values were indexed, of how many there were. */
  indexed: number;
  of: number;
}

/** What an investigation's subjects put into its search attributes, within INDEX_BYTES. */
export function observableIndex(subjects: readonly Subject[]): ObservableIndex {
  const types = new Set<string>();
  const distinct = new Set<string>();
  const values: string[] = [];
  // The JSON of the list: its brackets, then each value in quotes after a comma (none before the first).
  let bytes = 2;
  for (const subject of subjects) {
    if (subject.kind === 'object') continue;
    types.add(subject.kind === 'file' ? 'file' : subject.observable.type);
    const value = subject.kind === 'file' ? subject.file.sha256 : indexValue(subject.observable.data);
    if (!value || distinct.has(value)) continue;
    distinct.add(value);
    const cost = value.length + 2 + (values.length ? 1 : 0);
    if (bytes + cost > INDEX_BYTES) continue;
    bytes += cost;
    values.push(value);
  }
  return { values, types: [...types], indexed: values.length, of: distinct.size };
}

/** One thing an investigation was asked about, as the list shows it. */
export interface WhatItem {
  /** The value or file name, shortened for a table cell. */
  label: string;
  /** Its indexed form, for a "seen before" search; absent for what is not indexed (TheHive objects, bare text). */
  search?: string;
}

/** What was investigated, in the memo at start (`what`): the first few subjects and how many more there are. */
export interface InvestigationWhat {
  items: WhatItem[];
  more: number;
}

const WHAT_ITEMS = 3;
const LABEL_CHARS = 60;

/** The first subjects of an input (given observables, files, the text's observables), for the list. */
export function describeInput(input: Pick<InvestigationInput, 'observables' | 'files' | 'text' | 'object'>): InvestigationWhat {
  const items: WhatItem[] = [];
  let total = 0;
  const add = (item: WhatItem) => {
    total += 1;
    if (items.length < WHAT_ITEMS) items.push(item);
  };
  for (const file of input.files) add({ label: shorten(file.filename ?? `file ${file.sha256.slice(0, 12)}`), search: file.sha256 });
  for (const observable of input.observables) add({ label: shorten(observable.data), search: indexValue(observable.data) });
  if (input.text) for (const observable of extractObservables(input.text)) add({ label: shorten(observable.data), search: indexValue(observable.data) });
  if (input.object) add({ label: shorten(objectLabel(input.object).data) });
  if (!total && input.text?.trim()) add({ label: shorten(input.text.trim().replace(/\s+/g, ' ')) });
  return { items, more: total - items.length };
}

function shorten(text: string): string {
  const chars = [...text];
  return chars.length <= LABEL_CHARS ? text : `${chars.slice(0, LABEL_CHARS - 1).join('')}…`;
}
