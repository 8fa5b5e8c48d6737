// Builds the page from data without ever parsing data as HTML: text goes in through text nodes and
// attributes through setAttribute, so an observable such as "<img onerror=...>" shows as text.

/**
 * h('a', { href: '#/', class: 'x', onclick: fn }, 'text', child, [more]) → an element.
 * Attributes whose value is null, undefined or false are left out; true sets an empty attribute.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'value' && 'value' in element) {
      element.value = String(value);
    } else {
      element.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else if (child instanceof Node) element.appendChild(child);
    else element.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `element`. */
export function replace(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const LEVELS = ['info', 'safe', 'suspicious', 'malicious'];

/** A taxonomy level or verdict as a coloured badge; the word is always there, not only the colour. */
export function levelBadge(level, text = level) {
  const known = LEVELS.includes(level) ? level : 'unknown';
  return h('span', { class: `badge level-${known}` }, text ?? 'none');
}

const STATES = {
  running: 'busy', queued: 'busy', Running: 'busy', pending: 'busy',
  success: 'good', completed: 'good', Completed: 'good', Success: 'good', approved: 'good', sent: 'good',
  failure: 'bad', timeout: 'bad', error: 'bad', failed: 'bad', Failed: 'bad', Fail: 'bad', TimedOut: 'bad', Terminated: 'bad',
  rejected: 'muted', expired: 'muted', Canceled: 'muted', 'not-required': 'muted', ContinuedAsNew: 'muted',
};

/** A job, investigation or approval state as a badge. */
export function stateBadge(state) {
  return h('span', { class: `badge state-${STATES[state] ?? 'muted'}` }, state ?? 'unknown');
}

/** An engine taxonomy (namespace:predicate=value) as a badge in its level's colour, the level in words too. */
export function taxonomyBadge(taxonomy) {
  const badge = levelBadge(taxonomy.level, `${taxonomy.namespace}:${taxonomy.predicate}=${taxonomy.value}`);
  badge.prepend(h('span', { class: 'visually-hidden' }, `${taxonomy.level}: `));
  badge.title = taxonomy.level;
  return badge;
}

export function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function formatDuration(fromIso, toIso) {
  const ms = new Date(toIso).getTime() - new Date(fromIso).getTime();
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatBytes(bytes) {
  if (!Number.isFinite(bytes)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** A message in a region screen readers announce; `kind` is 'error' or 'info'. */
export function notice(kind, text) {
  return h('p', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** A field: its label, the control, and an optional hint tied to the control for screen readers. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 10)}`;
  control.id = id;
  let hintElement = null;
  if (hint) {
    hintElement = h('span', { class: 'hint', id: `${id}-hint` }, hint);
    control.setAttribute('aria-describedby', hintElement.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintElement);
}
