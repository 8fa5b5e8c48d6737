import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');
const RUNNER = join(ROOT, 'test', 'helpers', 'cruise-layers.mjs');
/** Every source folder with a place in docs/architecture.md's layers, and the scripts that use them. */
const FOLDERS = ['core', 'contract', 'workflows', 'infra', 'activities', 'workers', 'gateway', 'system', 'scripts'];

interface Violation { from: string; to: string; rule: string }

function violations(cwd: string, folders: string[]): string[] {
  const output = execFileSync(process.execPath, [RUNNER, CONFIG, ...folders], { cwd, encoding: 'utf8', timeout: 120_000 });
  return (JSON.parse(output) as Violation[]).map(({ from, to, rule }) => `${from} -> ${to} (${rule})`).sort();
}

describe('the layers of docs/architecture.md', () => {
  it('hold in the source tree: no import crosses a layer the wrong way and no module imports itself round a cycle', () => {
    expect(violations(ROOT, FOLDERS)).toEqual([]);
  });

  describe('as dependency-cruiser checks them', () => {
    let dir: string;
    const write = (file: string, text: string) => {
      mkdirSync(join(dir, dirname(file)), { recursive: true });
      writeFileSync(join(dir, file), text);
    };

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'docket-layers-'));
      write('core/verdict.ts', "import { start } from '../gateway/server';\nexport const verdict = start;\n");
      write('gateway/server.ts', "import type { Flow } from '../workflows/flow';\nexport const start = (flow?: Flow) => flow;\n");
      write('workflows/flow.ts', "import { act } from '../activities/act';\nimport type { Act } from '../activities/act';\nexport type Flow = Act;\nexport const flow = act;\n");
      write('activities/act.ts', "export type Act = string;\nexport const act = 'act';\n");
      write('infra/a.ts', "import { b } from './b';\nexport const a = () => b;\n");
      write('infra/b.ts', "import { a } from './a';\nexport const b = () => a;\n");
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('name each forbidden import with its rule, type-only ones from the gateway included, and each cycle', () => {
      expect(violations(dir, ['core', 'gateway', 'workflows', 'activities', 'infra'])).toEqual([
        'core/verdict.ts -> gateway/server.ts (core-is-pure)',
        'gateway/server.ts -> workflows/flow.ts (gateway-not-activities-or-workflows)',
        'infra/a.ts -> infra/b.ts -> infra/a.ts (no-circular)',
        'workflows/flow.ts -> activities/act.ts (workflows-import-activity-types-only)',
      ]);
    });
  });
});
