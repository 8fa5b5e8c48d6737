// Sign-in with an API key. The key is checked against the gateway before it is kept, so a mistyped or
// revoked key is refused here, with the gateway's own message, rather than on the next page.

import { canRead, storeKey } from './api.js';
import { field, h, notice } from './dom.js';

export function renderSignIn(main, _route, app) {
  const key = h('input', { type: 'password', name: 'key', autocomplete: 'off', spellcheck: 'false', required: true, placeholder: 'dk_…' });
  const messages = h('div', { class: 'messages' });
  const button = h('button', { type: 'submit' }, 'Sign in');

  if (app.reason) messages.append(notice('error', app.reason));
  else if (app.mode === 'none') messages.append(notice('info', 'This gateway takes no calls without a key. Sign in with an API key.'));

  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'signin-title' },
    field('API key', key, 'An admin creates one with: npm run keys -- create --name <name> --role <role>. It is kept in this tab only, until you sign out or close it.'),
    h('div', { class: 'actions' }, button),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = key.value.trim();
    if (!value) return;
    button.disabled = true;
    messages.replaceChildren(notice('info', 'Checking the key…'));
    try {
      await canRead(value);
      storeKey(value);
      app.reason = null;
      await app.refreshSession();
      app.go('#/');
    } catch (error) {
      messages.replaceChildren(notice('error', `Docket refused the key: ${error.message}`));
      key.select();
      key.focus();
    } finally {
      button.disabled = false;
    }
  });

  main.append(h('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in'), messages, form);
  if (app.mode === 'anonymous') {
    main.append(h('p', {}, 'You can also go on without a key: ', h('a', { href: '#/' }, 'see the investigations'), '.'));
  }
  return null;
}
