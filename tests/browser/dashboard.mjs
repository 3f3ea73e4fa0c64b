// The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against the server that tests/it/dashboard.rs started and staffed. Every scenario runs in
// order; the first failure ends the run with a non-zero exit and says where.
//
// BACKOPS_E2E (JSON) carries the server's address, the people and their tokens, the ids of
// the event and collaborators, and where to write screenshots.

import assert from "node:assert/strict";
import fs from "node:fs";
import { join } from "node:path";

import { WAIT_MS, signIn, start, step, until } from "./harness.mjs";

const setup = JSON.parse(process.env.BACKOPS_E2E ?? "{}");

const { base, event, audio, client, pm, vic, cara, artifacts } = setup;

async function http(who, method, path, body) {
  const resp = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${who.token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  return { status: resp.status, body: text ? JSON.parse(text) : null };
}

const tasks = async (who) => (await http(who, "GET", `/v1/events/${event}/tasks`)).body;
const taskTitled = async (who, title) => (await tasks(who)).find((t) => t.title === title);

// ---- the browser ----

const { open, finish } = await start(setup);

const card = (w, title) => w.page.locator(`[data-testid=task-card][data-title="${title}"]`);
const parsed = (frames) => frames.map((f) => JSON.parse(f.text));

/** Every record (snapshot or upsert) that reached a page. */
function recordsIn(frames) {
  const out = [];
  for (const m of parsed(frames)) {
    for (const r of [...(m.records ?? []), ...(m.changes ?? [])]) if (r.data) out.push(r);
  }
  return out;
}

/** The code in the newest message delivered to `email` (the SMTP server's maildir), if any. */
function mailedCode(email) {
  let found = null;
  for (const f of fs.readdirSync(setup.maildir)) {
    const p = `${setup.maildir}/${f}`;
    const text = fs.readFileSync(p, "utf8");
    if (!text.split(/\r?\n/).some((l) => l.startsWith("To:") && l.includes(email))) continue;
    const m = /^Subject: (\d{8}) /m.exec(text);
    const at = fs.statSync(p).mtimeMs;
    if (m && (!found || at > found.at)) found = { at, code: m[1] };
  }
  return found?.code ?? null;
}

let newcomer = null;

// ---- the scenarios ----

await step("a newcomer creates an account on the page and lands on their (empty) events", async () => {
  const w = await open({ name: "Newcomer" }, { width: 390, height: 844 });
  await w.page.getByTestId("switch-signin").click();
  await w.page.getByLabel("Your name").fill("Noor");
  await w.page.getByLabel("Email").fill("noor@example.test");
  await w.page.getByLabel("Password").fill("short");
  await w.page.getByRole("button", { name: "Create the account" }).click();
  assert.match(await w.page.getByTestId("signin-error").textContent({ timeout: WAIT_MS }), /password/i);
  await w.page.getByLabel("Password").fill("a long enough password");
  await w.page.getByRole("button", { name: "Create the account" }).click();
  await w.page.getByTestId("no-events").waitFor({ timeout: WAIT_MS });
  assert.equal(await w.page.getByTestId("who").textContent(), "Noor");
  await w.page.locator("[data-testid=connection][data-state=live]").waitFor({ timeout: WAIT_MS });
  // The page asks for the code mailed to the address.
  await w.page.getByTestId("prove-email").waitFor({ timeout: WAIT_MS });
  w.account = await w.page.evaluate(() => JSON.parse(localStorage.getItem("backops.session")).account.id);
  newcomer = w;
});

await step("the newcomer proves their email with the mailed code, and the event waiting for it opens", async () => {
  const w = newcomer;
  // An invitation to the unproven address waits.
  const invited = await http(pm, "POST", `/v1/events/${event}/collaborators/${audio}/members`, { email: "noor@example.test" });
  assert.equal(invited.body.status, "pending", JSON.stringify(invited.body));
  await w.page.getByLabel("Code").fill("00000000");
  await w.page.getByRole("button", { name: "Confirm" }).click();
  assert.match(await w.page.getByTestId("prove-message").textContent({ timeout: WAIT_MS }), /not the code/);
  await w.page.screenshot({ path: `${artifacts}/email-code.png` });
  const code = await until("the mailed code", () => mailedCode("noor@example.test"));
  await w.page.getByLabel("Code").fill(code);
  await w.page.getByRole("button", { name: "Confirm" }).click();
  await w.page.getByTestId("prove-email").waitFor({ state: "detached", timeout: WAIT_MS });
  // The membership that waited is theirs now: the event is listed, without a reload.
  await w.page.getByTestId("event-link").first().waitFor({ timeout: WAIT_MS });
  const members = (await http(pm, "GET", `/v1/events/${event}/collaborators/${audio}/members`)).body;
  assert.ok(members.some((m) => m.person === w.account), JSON.stringify(members));
  await w.page.screenshot({ path: `${artifacts}/email-proven.png` });
  await w.context.close();
});

const office = await open(pm, { width: 1360, height: 900 });

await step("a wrong password gets a clear message; the right one signs in and the event opens live", async () => {
  await office.page.getByLabel("Email").fill(pm.email);
  await office.page.getByLabel("Password").fill("not the password");
  await office.page.getByRole("button", { name: "Sign in" }).click();
  const err = await office.page.getByTestId("signin-error").textContent({ timeout: WAIT_MS });
  assert.match(err, /password|email/i);
  await signIn(office);
  assert.equal(await office.page.getByTestId("event").getAttribute("data-mode"), "seat");
});

await step("the seat holder sees the whole event: every collaborator's tasks, the schedule, advances, files, the field", async () => {
  const p = office.page;
  await p.getByTestId("tab-tasks").click();
  for (const title of setup.audio_tasks.concat(setup.client_tasks)) await card(office, title).waitFor({ timeout: WAIT_MS });
  assert.equal(await p.getByTestId("column-in_review").getByTestId("task-card").count(), 1);
  await office.page.screenshot({ path: join(artifacts, "seat-holder-tasks.png"), fullPage: true });

  await p.getByTestId("tab-overview").click();
  await p.getByText(setup.activity_now).first().waitFor({ timeout: WAIT_MS });
  await p.getByText(setup.advance_review).first().waitFor({ timeout: WAIT_MS });

  await p.getByTestId("tab-files").click();
  const thumb = p.getByTestId("thumbnail").first();
  await thumb.waitFor({ timeout: WAIT_MS });
  await until("the thumbnail to load", () => thumb.evaluate((img) => img.complete && img.naturalWidth > 0));
  assert.equal(await thumb.evaluate((img) => img.naturalWidth), 256, "the 256 px thumbnail, through a file link");

  await p.getByTestId("tab-field").click();
  const rows = p.getByTestId("gate-row");
  await until("both gates on the chart", async () => (await rows.count()) === 2);
  const totals = Object.fromEntries(
    await rows.evaluateAll((els) => els.map((e) => [e.dataset.gate, Number(e.dataset.total)])),
  );
  assert.deepEqual(totals, setup.admissions_per_gate);
  await until("the duplicate entry", async () => (await p.getByTestId("duplicates").locator("li").count()) === 1);
  assert.equal(await p.getByTestId("crew").locator("li").count(), setup.crew_on_clock);
  assert.equal(await p.getByTestId("gear").getByTestId("overdue").count(), 1);
  assert.equal(await p.getByTestId("gear").getByTestId("out").count(), 1);
  await p.getByTestId("devices").getByText(setup.gate_device).waitFor({ timeout: WAIT_MS });
  await office.page.screenshot({ path: join(artifacts, "seat-holder-field.png"), fullPage: true });
  await p.getByTestId("tab-overview").click();
  await office.page.screenshot({ path: join(artifacts, "seat-holder-overview.png"), fullPage: true });
  await p.getByTestId("tab-tasks").click();
});

await step("a task created through the API appears on the open page within 1 s, without a reload", async () => {
  const title = "Rig the delay towers";
  const t0 = Date.now();
  const r = await http(pm, "POST", `/v1/events/${event}/tasks`, { collaborator: audio, title });
  assert.equal(r.status, 201);
  await card(office, title).waitFor({ timeout: 1000 });
  console.log(`  appeared ${Date.now() - t0} ms after the request was sent`);
});

await step("the board creates, edits and moves tasks through the sync socket", async () => {
  const p = office.page;
  await p.getByTestId("new-task-collaborator").selectOption(client);
  await p.getByTestId("new-task-title").fill("Print wristbands");
  await p.getByTestId("new-task-add").click();
  await card(office, "Print wristbands").waitFor({ timeout: WAIT_MS });
  const made = await until("the new task on the server", () => taskTitled(pm, "Print wristbands"));
  assert.equal(made.collaborator, client);

  await card(office, "Print wristbands").getByTestId("task-title").click();
  await p.getByTestId("task-title-input").fill("Print 20,000 wristbands");
  await p.getByTestId("task-title-input").press("Enter");
  await until("the edit on the server", async () => (await taskTitled(pm, "Print 20,000 wristbands"))?.id === made.id);

  await card(office, "Print 20,000 wristbands").getByTestId("task-status").selectOption("done");
  await p.getByTestId("column-done").locator(`[data-id="${made.id}"]`).waitFor({ timeout: WAIT_MS });
  await until("the move on the server", async () => (await taskTitled(pm, "Print 20,000 wristbands"))?.status === "done");
  await until("every push answered", async () => (await p.getByTestId("pending").count()) === 0);
});

const vendor = await open(cara, { width: 390, height: 844 });

await step("a free member sees exactly their collaborator's five tabs, uploads and answers in them, and no frame carries another collaborator's record", async () => {
  await signIn(vendor);
  const p = vendor.page;
  assert.equal(await p.getByTestId("event").getAttribute("data-mode"), "member");
  const tabs = await p.locator("nav.tabs a").allTextContents();
  assert.deepEqual(tabs, ["Dashboard", "Tasks", "Schedule", "Files", "Advances"]);
  await p.getByTestId("tab-tasks").click();
  for (const title of setup.client_tasks) await card(vendor, title).waitFor({ timeout: WAIT_MS });
  // Activity elsewhere in the event, then one of the vendor's own: when the vendor's task
  // has arrived, everything committed before it has been judged for this page.
  await http(pm, "POST", `/v1/events/${event}/tasks`, { collaborator: audio, title: "Audio-only: patch list" });
  await http(pm, "POST", `/v1/events/${event}/advances`, { collaborator: audio, title: "Audio-only: input list" });
  await http(pm, "POST", `/v1/events/${event}/tasks`, { collaborator: client, title: "Client: guest list" });
  await card(vendor, "Client: guest list").waitFor({ timeout: WAIT_MS });
  const records = recordsIn(vendor.frames.received);
  assert.ok(records.length > 0);
  // docs/protocol.md "Records and changes": what each record belongs to. The event's own
  // record is everyone's; a free member gets nothing of the field modules or the seats.
  const theirs = (r) => {
    const d = r.data;
    switch (r.kind) {
      case "event":
        return true;
      case "collaborator":
        return r.id === client;
      case "activity":
        return d.collaborators.includes(client);
      case "task":
      case "file_meta":
      case "advance":
      case "collab_member":
      case "invitation":
      case "module_grant":
        return d.collaborator === client;
      default:
        return false;
    }
  };
  const foreign = records.filter((r) => !theirs(r) || JSON.stringify(r).includes("Audio-only"));
  assert.deepEqual(foreign, [], "records of another collaborator reached the free member's page");
  assert.ok(records.some((r) => r.kind === "activity" && r.data.collaborators.includes(audio)), "a shared activity is theirs too");
  for (const title of setup.audio_tasks) assert.equal(await card(vendor, title).count(), 0);
  // A photo from the phone: hashed, sent in chunks, made a file; its thumbnail shows.
  await p.getByTestId("tab-files").click();
  await p.getByTestId("upload-input").setInputFiles(setup.photo);
  await p.locator("[data-testid=upload][data-phase=done]").waitFor({ timeout: WAIT_MS });
  const shot = p.locator('[data-testid=file][data-name="guest-entrance.jpg"]');
  await shot.getByTestId("thumbnail").waitFor({ timeout: WAIT_MS });
  const files = (await http(pm, "GET", `/v1/events/${event}/files`)).body;
  const up = files.find((f) => f.name === "guest-entrance.jpg");
  assert.equal(up?.collaborator, client, "in the vendor's own folder");
  assert.equal(up?.size, setup.photo_size);
  assert.equal(up?.content_hash, setup.photo_sha256, "hashed in the page as the server hashed it");
  // The vendor answers an advance; it goes to the office for review, and is approved there.
  await p.getByTestId("tab-advances").click();
  await p.locator('[data-testid=advance][data-title="Hospitality"]').getByTestId("advance-open").click();
  await p.getByTestId("add-answer").click();
  await p.getByLabel("Question").last().fill("Dietary needs");
  await p.getByLabel("Answer").last().fill("12 vegetarian");
  await p.getByTestId("save-answers").click();
  const answered = await until("the answers on the server", async () => {
    const a = (await http(pm, "GET", `/v1/events/${event}/advances`)).body.find((x) => x.title === "Hospitality");
    return a?.status === "needs_review" && a;
  });
  assert.deepEqual(answered.answers, { "Dietary needs": "12 vegetarian" });
  await office.page.getByTestId("tab-overview").click();
  await office.page.locator('[data-testid=advance][data-title="Hospitality"]').getByTestId("approve").click();
  await until("the approval on the server", async () => {
    const a = (await http(pm, "GET", `/v1/events/${event}/advances`)).body.find((x) => x.title === "Hospitality");
    return a?.status === "done";
  });
  await office.page.getByTestId("tab-tasks").click();
  // A phone's width: nothing wider than the screen (the tab strip scrolls inside itself).
  for (const tab of ["tasks", "schedule", "files", "advances", "dashboard"]) {
    await p.getByTestId(`tab-${tab}`).click();
    const [scroll, width] = await p.evaluate(() => [document.documentElement.scrollWidth, innerWidth]);
    assert.ok(scroll <= width, `the ${tab} tab is ${scroll} px wide on a ${width} px screen`);
  }
  await p.screenshot({ path: join(artifacts, "free-member.png"), fullPage: true });
  await p.getByTestId("tab-tasks").click();
});

await step("a read-only member cannot edit, and the server refuses a forged write", async () => {
  const p = vendor.page;
  assert.equal((await http(pm, "PATCH", `/v1/events/${event}/collaborators/${client}`, { read_only: true })).status, 200);
  await p.getByTestId("read-only").waitFor({ timeout: WAIT_MS });
  assert.equal(await p.getByTestId("new-task-title").count(), 0, "no new-task form");
  const selects = p.getByTestId("task-status");
  assert.ok((await selects.count()) > 0);
  for (const s of await selects.all()) assert.ok(await s.isDisabled(), "status can't be changed");
  for (const t of await p.getByTestId("task-title").all()) assert.ok(await t.isDisabled(), "titles can't be edited");
  // Forged: the page's own token, a socket of its own, a push the UI would never send.
  const answer = await p.evaluate(
    ({ event, client }) =>
      new Promise((resolve, reject) => {
        const token = JSON.parse(localStorage.getItem("backops.session")).token;
        const ws = new WebSocket(`ws://${location.host}/v1/sync`);
        ws.onopen = () => ws.send(JSON.stringify({ type: "hello", protocol: 1, token, device: "forger-1" }));
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.type === "welcome") {
            const mutation = { id: "forged-1", kind: "task", op: "create", fields: { collaborator: client, title: "Forged" } };
            ws.send(JSON.stringify({ type: "push", event, mutations: [mutation] }));
          }
          if (m.type === "ack") {
            ws.close();
            resolve(m.results[0]);
          }
        };
        ws.onerror = () => reject(new Error("socket failed"));
        setTimeout(() => reject(new Error("no answer")), 8000);
      }),
    { event, client },
  );
  assert.equal(answer.status, "rejected");
  assert.equal(answer.code, "read_only");
  assert.equal(await taskTitled(pm, "Forged"), undefined);
  await vendor.context.close();
});

const lead = await open(vic, { width: 1280, height: 800 });

await step("a released seat drops the event's other collaborators' data from the open page, live", async () => {
  await signIn(lead);
  const p = lead.page;
  assert.equal(await p.getByTestId("event").getAttribute("data-mode"), "seat");
  await p.getByTestId("tab-tasks").click();
  await card(lead, setup.client_tasks[0]).waitFor({ timeout: WAIT_MS });
  const seen = lead.frames.received.length;
  assert.equal((await http(pm, "DELETE", `/v1/events/${event}/seats/${vic.id}`)).status, 204);
  for (const title of setup.client_tasks) await card(lead, title).waitFor({ state: "detached", timeout: WAIT_MS });
  await until("the five tabs", async () => (await p.locator("nav.tabs a").allTextContents()).join() === "Dashboard,Tasks,Schedule,Files,Advances");
  await p.getByTestId("tab-tasks").click();
  await card(lead, setup.audio_tasks[0]).waitFor({ timeout: WAIT_MS });
  const narrowed = parsed(lead.frames.received.slice(seen)).some((m) => (m.changes ?? []).some((c) => c.op === "narrow"));
  assert.ok(narrowed, "the page was told to narrow");
  assert.equal(await p.locator("[data-testid=task-card] .chip").count(), 0);
});

await step("going offline and back resumes from the cursor: nothing missed, nothing twice, the offline edit kept", async () => {
  const p = office.page;
  const before = office.frames.received.length;
  const sentBefore = office.frames.sent.length;
  await office.context.setOffline(true);
  await p.locator("[data-testid=connection][data-state=offline]").waitFor({ timeout: WAIT_MS });
  const target = setup.audio_tasks[1];
  await card(office, target).getByTestId("task-title").click();
  await p.getByTestId("task-title-input").fill("Retension the truss, done offline");
  await p.getByTestId("task-title-input").press("Enter");
  await card(office, "Retension the truss, done offline").waitFor({ timeout: WAIT_MS });
  assert.match(await p.getByTestId("pending").textContent(), /1 pending/);
  assert.equal((await http(pm, "POST", `/v1/events/${event}/tasks`, { collaborator: audio, title: "Made while you were away" })).status, 201);
  await new Promise((r) => setTimeout(r, 300));
  await office.context.setOffline(false);
  await p.locator("[data-testid=connection][data-state=live]").waitFor({ timeout: WAIT_MS });
  await card(office, "Made while you were away").waitFor({ timeout: WAIT_MS });
  await until("the pending edit answered", async () => (await p.getByTestId("pending").count()) === 0);
  await until("the offline edit on the server", async () => !!(await taskTitled(pm, "Retension the truss, done offline")));
  assert.equal(await card(office, "Made while you were away").count(), 1);
  assert.equal(await card(office, target).count(), 0);
  const ids = await p.getByTestId("task-card").evaluateAll((els) => els.map((e) => e.dataset.id));
  assert.equal(new Set(ids).size, ids.length, "a task shown twice");

  const after = parsed(office.frames.received.slice(before));
  assert.ok(!after.some((m) => m.type === "snapshot"), "resumed from the cursor, not a new snapshot");
  const resumed = parsed(office.frames.sent.slice(sentBefore)).find((m) => m.type === "subscribe");
  assert.ok(Number.isInteger(resumed?.cursor), `the subscription resumed with a cursor: ${JSON.stringify(resumed)}`);
  const seqs = parsed(office.frames.received)
    .filter((m) => m.type === "changes" && m.event === event)
    .flatMap((m) => m.changes.map((c) => c.seq));
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq ${seqs[i]} after ${seqs[i - 1]}: a change sent twice`);
});

await step("a task written offline survives a reload of the page and reaches the server once", async () => {
  const p = office.page;
  let blocked = true;
  // New sockets are refused while `blocked`: the page loads, its socket can't connect.
  await p.routeWebSocket(/\/v1\/sync$/, (ws) => (blocked ? ws.close() : ws.connectToServer()));
  await office.context.setOffline(true);
  await p.locator("[data-testid=connection][data-state=offline]").waitFor({ timeout: WAIT_MS });
  await p.getByTestId("new-task-collaborator").selectOption(audio);
  await p.getByTestId("new-task-title").fill("Written before a reload");
  await p.getByTestId("new-task-add").click();
  await card(office, "Written before a reload").waitFor({ timeout: WAIT_MS });
  await office.context.setOffline(false);
  await p.reload();
  await p.getByTestId("pending").waitFor({ timeout: WAIT_MS });
  assert.match(await p.getByTestId("pending").textContent(), /1 pending/);
  assert.notEqual(await p.getByTestId("connection").getAttribute("data-state"), "live");
  assert.equal(await taskTitled(pm, "Written before a reload"), undefined, "nothing reached the server yet");
  blocked = false;
  await p.locator("[data-testid=connection][data-state=live]").waitFor({ timeout: 15_000 });
  await card(office, "Written before a reload").waitFor({ timeout: WAIT_MS });
  await until("the push answered", async () => (await p.getByTestId("pending").count()) === 0);
  assert.equal((await tasks(pm)).filter((t) => t.title === "Written before a reload").length, 1);
});

await step("an edit the server refuses is rolled back on screen, with its reason", async () => {
  const p = lead.page;
  const title = setup.audio_tasks[0];
  await lead.context.setOffline(true);
  await p.locator("[data-testid=connection][data-state=offline]").waitFor({ timeout: WAIT_MS });
  await card(lead, title).getByTestId("task-title").click();
  await p.getByTestId("task-title-input").fill("Renamed while offline");
  await p.getByTestId("task-title-input").press("Enter");
  await card(lead, "Renamed while offline").waitFor({ timeout: WAIT_MS });
  assert.equal((await http(pm, "PATCH", `/v1/events/${event}/collaborators/${audio}`, { read_only: true })).status, 200);
  await lead.context.setOffline(false);
  const toast = p.getByTestId("toast").first();
  await toast.waitFor({ timeout: WAIT_MS });
  assert.match(await toast.textContent(), /refused and undone: .*read-only/i);
  await card(lead, title).waitFor({ timeout: WAIT_MS });
  assert.equal(await card(lead, "Renamed while offline").count(), 0);
  assert.ok(await taskTitled(pm, title), "the server kept the title");
  await p.getByTestId("read-only").waitFor({ timeout: WAIT_MS });
});

await finish();
