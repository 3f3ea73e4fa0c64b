// The dashboard's sign-in across a show day, in a real browser, against a server whose
// access tokens last 3 s (standing in for 15 minutes): the page renews its token by itself
// and stays live, a page opened again after its token expired renews before connecting,
// signing out ends the sign-in on the server, and a sign-in ended elsewhere signs the page
// out saying so. Started by tests/it/dashboard.rs.

import assert from "node:assert/strict";

import { WAIT_MS, signIn, start, step, until } from "./harness.mjs";

const setup = JSON.parse(process.env.BACKOPS_E2E ?? "{}");
const { base, event, audio, pm, vic } = setup;

/** A fresh sign-in of `who` through the HTTP API (the server's tokens outlive little here). */
async function tokenOf(who) {
  const r = await fetch(`${base}/v1/sessions`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: who.email, password: who.password, device_name: "script" }),
  });
  assert.equal(r.status, 200);
  return (await r.json()).token;
}

async function http(token, method, path, body) {
  const resp = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

const { open, finish } = await start(setup);
const stored = (w) => w.page.evaluate(() => JSON.parse(localStorage.getItem("backops.session") ?? "null"));
const liveState = (w) => w.page.getByTestId("connection").getAttribute("data-state");
let w = null;

await step("the page renews its token by itself and stays live past three lifetimes", async () => {
  w = await open({ name: "Vic" }, { width: 1280, height: 800 });
  await signIn({ ...w, who: vic });
  const first = await stored(w);
  const seen = new Set();
  const end = Date.now() + 10_000;
  while (Date.now() < end) {
    seen.add(await liveState(w));
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual([...seen], ["live"], "the connection never left live");
  const now = await stored(w);
  assert.notEqual(now.token, first.token);
  assert.notEqual(now.refresh_token, first.refresh_token);
  assert.equal(now.session, first.session, "the same sign-in, renewed");
  const sent = w.frames.sent.filter((f) => f.text.includes('"type":"renew"')).length;
  assert.ok(sent >= 3, `the open socket took the renewed tokens (${sent} renewals)`);
  assert.equal(w.frames.sent.filter((f) => f.text.includes('"type":"hello"')).length, 1, "one connection");
  const title = "Checked after the renewals";
  const made = await http(await tokenOf(pm), "POST", `/v1/events/${event}/tasks`, { collaborator: audio, title });
  assert.equal(made.status, 201);
  await w.page.getByTestId("tab-tasks").click();
  await w.page.locator(`[data-testid=task-card][data-title="${title}"]`).waitFor({ timeout: WAIT_MS });
});

await step("a page opened again after its token expired renews before it connects", async () => {
  const before = await stored(w);
  await w.page.close();
  await new Promise((r) => setTimeout(r, 4_000));
  const page = await w.context.newPage();
  await page.goto("/");
  await page.getByTestId("event-link").first().click();
  await page.locator("[data-testid=connection][data-state=live]").waitFor({ timeout: WAIT_MS });
  w = { ...w, page };
  const after = await stored(w);
  assert.equal(after.session, before.session);
  assert.ok(after.expires_at > before.expires_at);
});

await step("signing out ends the sign-in on the server", async () => {
  const { token, refresh_token } = await stored(w);
  await w.page.getByTestId("sign-out").click();
  await w.page.getByLabel("Email").waitFor({ timeout: WAIT_MS });
  await until("the server ended the sign-in", async () => (await http(token, "GET", "/v1/me")).status === 401);
  assert.equal((await http(token, "GET", "/v1/me")).body.code, "sign_in_ended");
  const renewal = await fetch(`${base}/v1/sessions/refresh`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token }),
  });
  assert.equal(renewal.status, 401);
  assert.equal(await w.page.evaluate(() => localStorage.getItem("backops.session")), null);
});

await step("a sign-in ended from another device signs the page out and says so", async () => {
  await w.page.goto("/");
  await signIn({ ...w, who: vic });
  const ended = await http(await tokenOf(vic), "DELETE", "/v1/me/sessions");
  assert.ok(ended.body.ended >= 2, JSON.stringify(ended.body));
  const notice = w.page.getByTestId("signin-notice");
  await notice.waitFor({ timeout: WAIT_MS });
  assert.match(await notice.textContent(), /ended/);
});

await finish();
