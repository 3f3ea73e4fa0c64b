// What the browser scenarios share: Chromium started with a fresh profile, a person's own
// window with its WebSocket frames kept, signing in on the page, waiting, and numbered steps
// (`ok - …` per step; the first failure ends the run with a non-zero exit).

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { launch } from "./chromium.mjs";

export const WAIT_MS = 10_000;

export async function until(what, check, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let failed = false;
export async function step(name, f) {
  if (failed) return;
  const t0 = Date.now();
  try {
    await f();
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed = true;
    console.log(`FAILED - ${name}\n${e.stack ?? e}`);
  }
}

/** Starts Chromium for `setup` (its `chromium`, `dashboard_dir` and server `base`). */
export async function start(setup) {
  const profile = mkdtempSync(join(tmpdir(), "backops-chromium-"));
  // Playwright gives each launch a fresh profile of its own; Chromium's other state (caches,
  // crash reports) goes to a fresh directory too.
  const browser = await launch(setup.dashboard_dir, setup.chromium, [
    `--disk-cache-dir=${join(profile, "cache")}`,
    `--crash-dumps-dir=${join(profile, "crashes")}`,
  ]);

  /** A person's own browser window: its WebSocket frames in both directions are kept. */
  async function open(who, viewport) {
    const context = await browser.newContext({ viewport, baseURL: setup.base });
    const page = await context.newPage();
    const frames = { received: [], sent: [] };
    page.on("websocket", (ws) => {
      ws.on("framereceived", (f) => frames.received.push({ at: Date.now(), text: String(f.payload) }));
      ws.on("framesent", (f) => frames.sent.push({ at: Date.now(), text: String(f.payload) }));
    });
    page.on("pageerror", (e) => console.log(`[${who.name}] page error: ${e.message}`));
    await page.goto("/");
    return { context, page, frames, who };
  }

  async function finish() {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    process.exit(failed ? 1 : 0);
  }

  return { browser, open, finish };
}

/** Signs `w.who` in on the page and opens the first event, live. */
export async function signIn(w) {
  await w.page.getByLabel("Email").fill(w.who.email);
  await w.page.getByLabel("Password").fill(w.who.password);
  await w.page.getByRole("button", { name: "Sign in" }).click();
  await w.page.getByTestId("event-link").first().click();
  await w.page.getByTestId("event").waitFor({ timeout: WAIT_MS });
  await w.page.locator('[data-testid=connection][data-state=live]').waitFor({ timeout: WAIT_MS });
}
