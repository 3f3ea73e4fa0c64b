// Debian's Chromium, headless, as the dashboard's browser test and benchmark start it:
// playwright-core from the dashboard's own packages, and the flags that keep Chromium off
// every network but loopback (this machine's closed network refuses the rest).

import { createRequire } from "node:module";
import { join } from "node:path";

export const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

/** Launches `executable` with a fresh profile (Playwright makes one per launch) and `extra` flags. */
export async function launch(dashboardDir, executable, extra = []) {
  const { chromium } = createRequire(join(dashboardDir, "package.json"))("playwright-core");
  return chromium.launch({ executablePath: executable, headless: true, args: [...FLAGS, ...extra] });
}
