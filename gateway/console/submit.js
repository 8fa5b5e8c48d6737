// The submit form: free text (Docket finds the observables in it, defanged ones included), typed
// observables, and files. Files go as one multipart POST, streamed by the gateway to the blob store;
// without files the request is JSON.

import { getJson, postForm, postJson } from './api.js';
import { field, formatBytes, h, notice, replace } from './dom.js';

// TheHive's scales, which the engines receive as numbers.
const TLP = [['0', 'TLP:CLEAR'], ['1', 'TLP:GREEN'], ['2', 'TLP:AMBER'], ['3', 'TLP:AMBER+STRICT'], ['4', 'TLP:RED']];
const PAP = [['0', 'PAP:CLEAR'], ['1', 'PAP:GREEN'], ['2', 'PAP:AMBER'], ['3', 'PAP:RED']];

function choice(name, options, selected) {
  return h('select', { name }, options.map(([value, label]) => h('option', { value, selected: value === selected }, label)));
}

/** "domain evil.example" per line → [{type, data}]; throws naming the first line it cannot read. */
export function parseObservables(text) {
  const observables = [];
  text.split('\n').forEach((line, index) => {
    const trimmed = line.trim();
    if (!trimmed) return;
    const match = /^(\S+)\s+(.+)$/.exec(trimmed);
    if (!match) throw new Error(`observables, line ${index + 1}: write the type, a space, then the value (for example: domain evil.example)`);
    observables.push({ type: match[1].toLowerCase(), data: match[2].trim() });
  });
  return observables;
}

export function renderSubmit(main, _route, app) {
  const text = h('textarea', { name: 'text', rows: 6, spellcheck: 'false' });
  const observables = h('textarea', { name: 'observables', rows: 4, spellcheck: 'false', placeholder: 'domain evil.example\nip 203.0.113.5' });
  const files = h('input', { type: 'file', name: 'file', multiple: true });
  const fileList = h('ul', { class: 'file-list', 'aria-live': 'polite' });
  const engines = h('fieldset', { class: 'engines' }, h('legend', {}, 'Engines'), h('p', { class: 'hint' }, 'Loading the engines…'));
  const tlp = choice('tlp', TLP, '2');
  const pap = choice('pap', PAP, '2');
  const force = h('input', { type: 'checkbox', name: 'force', id: 'submit-force' });
  const messages = h('div', { class: 'messages' });
  const button = h('button', { type: 'submit' }, 'Start investigation');

  files.addEventListener('change', () => {
    replace(fileList, [...files.files].map((file) => h('li', {}, `${file.name} (${formatBytes(file.size)})`)));
  });

  getJson('/v1/engines').then(({ engines: list }) => {
    const analyzers = list.filter((engine) => engine.kind === 'analyzer');
    replace(engines,
      h('legend', {}, 'Engines'),
      h('p', { class: 'hint' }, 'None checked: every analyzer that accepts each observable’s type.'),
      analyzers.map((engine) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: 'engine', value: engine.name }),
        h('span', {}, engine.name),
        h('span', { class: 'hint' }, ` ${engine.accepts.join(', ')}`))));
  }).catch((error) => replace(engines, h('legend', {}, 'Engines'), notice('error', `The engines could not be listed: ${error.message}`)));

  const form = h('form', { class: 'card', 'aria-labelledby': 'submit-title' },
    field('Text', text, 'Pasted mail, chat or report text. Docket extracts IPs, domains, URLs, mail addresses, hashes and CVEs, defanged ones too (hxxps://evil[.]example).'),
    field('Observables', observables, 'One per line: the type, a space, the value. Types: ip, ipv6, domain, fqdn, url, mail, md5, sha1, sha256, hash, cve, filename, other…'),
    field('Files', files, 'Each file is analyzed by the engines that take files.'),
    fileList,
    engines,
    h('div', { class: 'row' }, field('TLP', tlp), field('PAP', pap)),
    h('div', { class: 'check' }, force, h('label', { for: 'submit-force' }, 'Run every engine again, even when a fresh cached result exists')),
    h('div', { class: 'actions' }, button),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    messages.replaceChildren();
    let typed;
    try {
      typed = parseObservables(observables.value);
    } catch (error) {
      messages.replaceChildren(notice('error', error.message));
      observables.focus();
      return;
    }
    const chosen = [...engines.querySelectorAll('input[name=engine]:checked')].map((input) => input.value);
    if (!text.value.trim() && !typed.length && !files.files.length) {
      messages.replaceChildren(notice('error', 'Nothing to investigate: give text, observables or a file.'));
      text.focus();
      return;
    }
    button.disabled = true;
    messages.replaceChildren(notice('info', files.files.length ? 'Uploading…' : 'Starting…'));
    try {
      const started = files.files.length
        ? await postForm('/v1/investigations', multipart(text.value, typed, chosen, tlp.value, pap.value, force.checked, files.files))
        : await postJson('/v1/investigations', {
          ...(text.value.trim() ? { text: text.value } : {}),
          observables: typed,
          ...(chosen.length ? { engines: chosen } : {}),
          tlp: Number(tlp.value),
          pap: Number(pap.value),
          force: force.checked,
        });
      app.go(`#/investigations/${encodeURIComponent(started.id)}`);
    } catch (error) {
      messages.replaceChildren(notice('error', `The investigation was not started: ${error.message}`));
      button.disabled = false;
    }
  });

  main.append(h('h1', { id: 'submit-title', tabindex: '-1' }, 'New investigation'), messages, form);
  return null;
}

function multipart(text, observables, engines, tlp, pap, force, files) {
  const form = new FormData();
  // Fields before files: the gateway reads the parts in order and streams each file as it arrives.
  if (text.trim()) form.append('text', text);
  if (observables.length) form.append('observables', JSON.stringify(observables));
  if (engines.length) form.append('engines', engines.join(','));
  form.append('tlp', tlp);
  form.append('pap', pap);
  if (force) form.append('force', 'true');
  for (const file of files) form.append('file', file, file.name);
  return form;
}
