/**
 * Headless Chromium from Debian's packages (`apt-get install chromium`,
 * scripts/setup-browser.sh), driven by playwright-core: never a browser
 * download of Playwright's own. Each launch gets a fresh, empty profile, and
 * the flags keep Chromium from reaching out (this machine's network is
 * closed: background networking, component updates and sync would only be
 * refused connections).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import type { BrowserContext } from "playwright-core";

/** Debian's Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** The flags every launch uses. */
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** A running browser with one context on a fresh profile. */
export interface Chromium {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium (desktop width 1280 to start with); fails with the fix when it is not installed. */
export async function launchChromium(): Promise<Chromium> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup-browser.sh as root (apt-get install chromium)`);
  const profile = mkdtempSync(join(tmpdir(), "homelab-chromium-"));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 800 } });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
