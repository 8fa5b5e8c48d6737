import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { ROOT } from './system';

/** Debian's Chromium, which `scripts/provision.sh chromium` installs. */
const CHROMIUM = '/usr/bin/chromium';
/** Where the browser tests leave their screenshots (CI keeps the folder as an artifact). */
export const SCREENSHOTS = join(ROOT, 'test-artifacts', 'screenshots');

export interface TestBrowser {
  context: BrowserContext;
  /** Closes the browser and removes its profile folder. */
  close(): Promise<void>;
}

/** Headless Chromium with a throwaway profile, offline apart from what the page itself asks for. */
export async function launchChromium(options: { acceptDownloads?: boolean } = {}): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'docket-chromium-'));
  mkdirSync(SCREENSHOTS, { recursive: true });
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      viewport: { width: 1280, height: 900 },
      acceptDownloads: options.acceptDownloads ?? false,
    });
    return {
      context,
      async close() {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Collects what the page reports as broken: script errors, and console errors such as a refusal by
 * the Content-Security-Policy. Chromium logs every 4xx as "Failed to load resource"; the tests expect
 * some (refused keys), so those are not problems.
 */
export function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`script error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(message.text());
  });
  return problems;
}
