/**
 * API keys for the gateway, kept as hashes in `<DOCKET_DATA_DIR>/keys.json`:
 *
 *   npm run keys -- create --name ci --role analyze   prints the key, once
 *   npm run keys -- list
 *   npm run keys -- revoke <id>                        takes effect on a running gateway at once
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../core/config';
import { KeyStore, KeyStoreError, ROLES, Role } from '../gateway/keys';
import { table } from './lib/table';

const USAGE = `usage: npm run keys -- create --name <name> --role <${ROLES.join('|')}> | list | revoke <id>`;

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { name: { type: 'string' }, role: { type: 'string' } },
  });
  const [command, ...rest] = positionals;
  const store = new KeyStore(join(loadConfig(process.env).DOCKET_DATA_DIR, 'keys.json'));

  if (command === 'create') {
    const role = Role.safeParse(values.role);
    if (!values.name || !role.success) throw new KeyStoreError(`create needs --name and --role (${ROLES.join(', ')})\n${USAGE}`);
    const { key, info } = await store.create(values.name, role.data);
    console.log(`created key ${info.id} (${info.name}, role ${info.role}); it is shown this once, store it now:\n\n${key}\n`);
    console.log(`use it as: curl -H "Authorization: Bearer ${key}" ...`);
    return;
  }
  if (command === 'list') {
    const keys = await store.list();
    if (!keys.length) {
      console.log(`no keys in ${store.file}; create one with: npm run keys -- create --name <name> --role <role>`);
      return;
    }
    console.log(table(['ID', 'NAME', 'ROLE', 'CREATED', 'REVOKED'], keys.map((k) => [k.id, k.name, k.role, k.created, k.revoked ?? ''])));
    return;
  }
  if (command === 'revoke' && rest.length === 1) {
    const info = await store.revoke(rest[0]);
    console.log(`key ${info.id} (${info.name}) is revoked since ${info.revoked}`);
    return;
  }
  throw new KeyStoreError(USAGE);
}

main(process.argv.slice(2)).catch((error) => {
  const known = error instanceof KeyStoreError || error instanceof ConfigError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
  console.error(known ? (error as Error).message : error);
  process.exit(1);
});
