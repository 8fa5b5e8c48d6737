// The investigations list: Temporal's visibility search behind GET /v1/investigations, filtered and
// paged. Filters and the page live in the address (#/?verdict=malicious&pageToken=…), so a filtered
// view can be reloaded, bookmarked and shared. The search box asks "have we seen this before?"
// (#/?observable=evil.example), and every value in the "What" column links to that search.

import { getJson } from './api.js';
import { field, formatDuration, formatTime, h, levelBadge, notice, replace, stateBadge } from './dom.js';

const FILTERS = ['observable', 'verdict', 'source', 'engine', 'type', 'status'];
// The values the gateway accepts (core/investigation.ts Source, Temporal's execution statuses).
const VERDICTS = ['info', 'safe', 'suspicious', 'malicious'];
const SOURCES = ['http', 'slack', 'event', 'schedule', 'cli'];
const STATUSES = ['Running', 'Completed', 'Failed', 'Canceled', 'Terminated', 'TimedOut'];
const PAGE_SIZES = ['20', '50', '100'];
const REFRESH_MS = 5000;

// Tokens of the pages before the current one, so "Previous page" can go back; Temporal's tokens only
// lead forward. Forgotten when the filters change.
let previous = { filters: '', tokens: [] };

function select(name, label, values, current) {
  const control = h('select', { name },
    h('option', { value: '' }, 'any'),
    values.map((value) => h('option', { value, selected: value === current }, value)));
  return field(label, control);
}

function pageSizeField(current) {
  // A size typed into the address (#/?pageSize=5) is shown as it is, not as the nearest choice.
  const sizes = PAGE_SIZES.includes(current) ? PAGE_SIZES : [current, ...PAGE_SIZES];
  return field('Per page', h('select', { name: 'pageSize' }, sizes.map((size) => h('option', { value: size, selected: size === current }, size))));
}

function hashFor(query) {
  const text = query.toString();
  return text ? `#/?${text}` : '#/';
}

export function renderList(main, route, app) {
  const query = route.query;
  const filterKey = FILTERS.map((name) => `${name}=${query.get(name) ?? ''}`).join('&') + `&size=${query.get('pageSize') ?? ''}`;
  if (previous.filters !== filterKey || !query.get('pageToken')) previous = { filters: filterKey, tokens: [] };

  const engineSlot = h('div', { class: 'field-slot' });
  const typeSlot = h('div', { class: 'field-slot' });
  const seenValue = query.get('observable') ?? '';
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter investigations' },
    field('Seen before?', h('input', {
      name: 'observable', type: 'search', value: seenValue, size: 30, maxlength: 8192, autocomplete: 'off', spellcheck: 'false',
      placeholder: 'evil.example, a URL, an IP, a hash',
    }), 'every investigation that analyzed it, sent or found'),
    select('verdict', 'Verdict', VERDICTS, query.get('verdict')),
    select('source', 'Source', SOURCES, query.get('source')),
    engineSlot,
    typeSlot,
    select('status', 'Status', STATUSES, query.get('status')),
    pageSizeField(query.get('pageSize') ?? PAGE_SIZES[0]),
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply filters'),
      h('a', { class: 'button secondary', href: '#/' }, 'Clear')),
  );
  // Engines and observable types are whatever this gateway has; until they load, plain text fields.
  replace(engineSlot, field('Engine', h('input', { name: 'engine', value: query.get('engine') ?? '', size: 12 })));
  replace(typeSlot, field('Observable type', h('input', { name: 'type', value: query.get('type') ?? '', size: 12 })));
  getJson('/v1/engines').then(({ engines }) => {
    const names = engines.map((engine) => engine.name).sort();
    const types = [...new Set(engines.filter((engine) => engine.kind === 'analyzer').flatMap((engine) => engine.accepts))].sort();
    replace(engineSlot, select('engine', 'Engine', names, query.get('engine')));
    replace(typeSlot, select('type', 'Observable type', types, query.get('type')));
  }).catch(() => undefined);

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      // The default page size stays out of the address, so the plain list keeps its short one.
      if (value && !(name === 'pageSize' && value === PAGE_SIZES[0])) next.set(name, String(value));
    }
    app.go(hashFor(next));
  });

  const status = h('div', { class: 'messages', 'aria-live': 'polite' });
  const results = h('div', { class: 'results' });
  // The DOM's append writes null as the word "null"; the search note is there only while searching.
  main.append(...[
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Investigations'),
      h('a', { class: 'button', href: '#/new' }, 'New investigation')),
    form,
    seenValue ? h('p', { class: 'search-note' }, 'Investigations that analyzed ', h('code', {}, seenValue), ', newest first, running ones on top.') : null,
    status, results,
  ].filter(Boolean));

  let timer = null;
  let stopped = false;
  const load = async () => {
    const api = new URLSearchParams();
    for (const name of [...FILTERS, 'pageSize', 'pageToken']) if (query.get(name)) api.set(name, query.get(name));
    if (!api.get('pageSize')) api.set('pageSize', PAGE_SIZES[0]);
    try {
      const page = await getJson(`/v1/investigations?${api}`);
      if (stopped) return;
      status.replaceChildren();
      replace(results, table(page.investigations, seenValue), pager(query, page.nextPageToken, app));
      // Keep the list current while something on it is still running.
      if (page.investigations.some((item) => item.status === 'Running')) timer = setTimeout(load, REFRESH_MS);
    } catch (error) {
      if (stopped) return;
      status.replaceChildren(notice('error', `The investigations could not be listed: ${error.message}`));
    }
  };
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

function table(items, seenValue) {
  if (!items.length) {
    return notice('info', seenValue
      ? `Not seen: no investigation that Temporal still keeps analyzed ${seenValue}.`
      : 'No investigations match. Start one with "New investigation".');
  }
  return h('table', { class: 'list' },
    h('caption', { class: 'visually-hidden' }, 'Investigations, newest first'),
    h('thead', {}, h('tr', {},
      ['Investigation', 'What', 'Status', 'Verdict', 'Source', 'Engines', 'Observable types', 'Started', 'Took'].map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, items.map((item) => h('tr', {},
      h('td', {}, h('a', { class: 'mono', href: `#/investigations/${encodeURIComponent(item.id)}` }, item.id)),
      h('td', { class: 'what' }, what(item)),
      h('td', {}, stateBadge(item.status)),
      h('td', { class: 'verdict' }, item.verdict ? levelBadge(item.verdict) : '—'),
      h('td', {}, item.source ?? ''),
      h('td', {}, words(item.engines)),
      h('td', {}, words(item.observableTypes)),
      h('td', {}, formatTime(item.startedAt)),
      h('td', {}, item.closedAt ? formatDuration(item.startedAt, item.closedAt) : ''),
    ))),
  );
}

/**
 * What was investigated: the first values or file names, each a link to its "seen before" search,
 * and how many more there were. Runs started before the list knew this have none.
 */
function what(item) {
  if (!item.what?.items.length) return h('span', { class: 'muted' }, '—');
  const entries = item.what.items.map((entry, index) => [
    index ? ', ' : null,
    entry.search
      ? h('a', { class: 'seen-link', href: hashFor(new URLSearchParams({ observable: entry.search })), title: `Every investigation that analyzed ${entry.label}` }, entry.label)
      : h('span', {}, entry.label),
  ]);
  const more = item.what.more ? h('span', { class: 'muted' }, ` +${item.what.more} more`) : null;
  const partial = item.observablesIndexed && item.observablesIndexed.indexed < item.observablesIndexed.of
    ? h('span', { class: 'muted', title: 'past the index bound, the rest are analyzed but not found by "Seen before?"' },
      ` (${item.observablesIndexed.indexed} of ${item.observablesIndexed.of} searchable)`)
    : null;
  return [entries, more, partial];
}

/** Names like ioc-lookup kept whole: a line may break between them, not at their hyphens. */
function words(list) {
  return (list ?? []).map((word, index) => [index ? ', ' : null, h('span', { class: 'nowrap' }, word)]);
}

function pager(query, nextToken, app) {
  const current = query.get('pageToken');
  const links = [];
  if (current) {
    const back = new URLSearchParams(query);
    const before = previous.tokens[previous.tokens.length - 1];
    if (before) back.set('pageToken', before);
    else back.delete('pageToken');
    links.push(h('button', {
      type: 'button', class: 'secondary',
      onclick: () => {
        previous.tokens.pop();
        app.go(hashFor(back));
      },
    }, 'Previous page'));
  }
  if (nextToken) {
    const next = new URLSearchParams(query);
    next.set('pageToken', nextToken);
    links.push(h('button', {
      type: 'button', class: 'secondary',
      onclick: () => {
        if (current) previous.tokens.push(current);
        app.go(hashFor(next));
      },
    }, 'Next page'));
  }
  return links.length ? h('nav', { class: 'pager', 'aria-label': 'Pages' }, links) : null;
}
