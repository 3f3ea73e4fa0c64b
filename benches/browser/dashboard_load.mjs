// The browser half of benches/benches/dashboard.rs: opens the seat holder's page LOADS
// times in fresh contexts (the first to count the snapshot's frames, the rest timed); then creates tasks through the API and times their
// arrival on the open page. Prints one `RESULT {json}` line.

import { launch } from "../../tests/browser/chromium.mjs";

const setup = JSON.parse(process.env.BACKOPS_BENCH ?? "{}");
const { base, event, session, token, collaborator, gates, loads, samples } = setup;
const browser = await launch(setup.dashboard_dir, setup.chromium);

const result = { load_ms: [], snapshot_ms: [], field_ms: [], heap_mib: [], live_ms: [], snapshot_bytes: 0, snapshot_frames: 0, records: 0 };
let page;
for (let i = 0; i < loads; i++) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, baseURL: base });
  await context.addInitScript((s) => localStorage.setItem("backops.session", s), JSON.stringify(session));
  page = await context.newPage();
  let bytes = 0;
  let frames = 0;
  let records = 0;
  let lastFrame = 0;
  // The first load counts the snapshot's frames. Capturing them ships every frame to this
  // process too, so the loads after it, which are timed, capture nothing.
  const capture = i === 0;
  if (capture) page.on("websocket", (ws) =>
    ws.on("framereceived", (f) => {
      const text = String(f.payload);
      if (text.startsWith('{"type":"snapshot"')) {
        bytes += text.length;
        frames += 1;
        const m = JSON.parse(text);
        records += m.records.length;
        if (m.last) lastFrame = performance.now();
      }
    }),
  );
  const t0 = performance.now();
  await page.goto(`/#/e/${encodeURIComponent(event)}/tasks`);
  await page.locator("[data-testid=connection][data-state=live]").waitFor({ timeout: 120_000 });
  await page.locator("[data-testid=task-card]").first().waitFor({ timeout: 120_000 });
  if (capture) result.snapshot_ms.push(lastFrame - t0);
  else result.load_ms.push(performance.now() - t0);
  const cdp = await context.newCDPSession(page);
  await cdp.send("Performance.enable");
  const { metrics } = await cdp.send("Performance.getMetrics");
  result.heap_mib.push(metrics.find((m) => m.name === "JSHeapUsedSize").value / 1048576);
  const t1 = performance.now();
  await page.getByTestId("tab-field").click();
  await page.locator("[data-testid=gate-row]").nth(gates - 1).waitFor({ timeout: 60_000 });
  result.field_ms.push(performance.now() - t1);
  await page.getByTestId("tab-tasks").click();
  if (capture) Object.assign(result, { snapshot_bytes: bytes, snapshot_frames: frames, records });
  if (i + 1 < loads) await context.close();
}

// The last page stays open, holding every record: tasks arrive one after another.
for (let i = 0; i < samples; i++) {
  const title = `Live ${i}`;
  const t0 = performance.now();
  const r = await fetch(`${base}/v1/events/${event}/tasks`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ collaborator, title }),
  });
  if (r.status !== 201) throw new Error(`task refused: ${r.status}`);
  await page.locator(`[data-testid=task-card][data-title="${title}"]`).waitFor({ timeout: 30_000 });
  result.live_ms.push(performance.now() - t0);
  await new Promise((res) => setTimeout(res, 100));
}

await browser.close();
console.log(`RESULT ${JSON.stringify(result)}`);
