// The first tab: a seat holder's Overview of the whole event, a collaborator's Dashboard
// of their own work.

import { TASK_COLUMNS, admissions, bytes, gearOut, onTheClock, str, today } from "../derive";
import type { WireRecord } from "../sync";
import { type Page, useNow } from "./common";
import { AdvanceRow } from "./advances";
import { Activity } from "./schedule";

function counts(tasks: WireRecord[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const t of tasks) c[str(t.data, "status")] = (c[str(t.data, "status")] ?? 0) + 1;
  return c;
}

export function Overview({ p }: { p: Page }) {
  const now = useNow(30_000);
  const c = counts(p.view("task"));
  const todays = today(p.view("activity"), now);
  const review = p.view("advance").filter((a) => str(a.data, "status") === "needs_review");
  const gates = admissions(p.view("scan"), p.view("gate"), now);
  const admitted = gates.reduce((n, g) => n + g.total, 0);
  const dups = p.view("scan_flag").length;
  const crew = onTheClock(p.view("punch")).length;
  const gear = gearOut(p.view("asset"), p.view("custody"), now);
  return (
    <section class="grid" aria-label="Overview">
      <div class="panel">
        <h3>Tasks</h3>
        <Stats items={TASK_COLUMNS.map(([s, l]) => [l, c[s] ?? 0])} />
      </div>
      <div class="panel">
        <h3>Field</h3>
        <Stats
          items={[
            ["Admitted, last 30 min", admitted],
            ["Duplicate entries", dups],
            ["Crew on the clock", crew],
            ["Gear overdue", gear.filter((g) => g.overdue).length],
          ]}
        />
      </div>
      <div class="panel wide">
        <h3>Today's schedule</h3>
        {todays.length ? (
          <ul class="list">
            {todays.map((a) => (
              <Activity key={a.id} p={p} a={a} now={now} />
            ))}
          </ul>
        ) : (
          <p class="muted">Nothing on today's schedule.</p>
        )}
      </div>
      <div class="panel wide">
        <h3>Advances awaiting review</h3>
        {review.length ? (
          <ul class="list">
            {review.map((a) => (
              <AdvanceRow key={a.id} p={p} a={a} />
            ))}
          </ul>
        ) : (
          <p class="muted">Nothing waits for review.</p>
        )}
      </div>
    </section>
  );
}

export function CollabDashboard({ p }: { p: Page }) {
  const now = useNow(60_000);
  const c = counts(p.view("task"));
  const files = p.view("file_meta");
  const adv = p.view("advance");
  const upcoming = p.view("activity").filter((a) => Date.parse(str(a.data, "ends_at")) > now.getTime()).length;
  return (
    <section class="grid" aria-label="Dashboard">
      <div class="panel">
        <h3>Tasks</h3>
        <Stats items={TASK_COLUMNS.map(([s, l]) => [l, c[s] ?? 0])} />
      </div>
      <div class="panel">
        <h3>At a glance</h3>
        <Stats
          items={[
            ["Upcoming activities", upcoming],
            ["Files", files.length],
            ["Advances to answer", adv.filter((a) => str(a.data, "status") === "not_started").length],
            ["Awaiting review", adv.filter((a) => str(a.data, "status") === "needs_review").length],
          ]}
        />
        <p class="muted">{bytes(files.reduce((n, f) => n + Number(f.data.size ?? 0), 0))} in files</p>
      </div>
      <div class="panel wide">
        <h3>Today</h3>
        <ul class="list">
          {today(p.view("activity"), now).map((a) => (
            <Activity key={a.id} p={p} a={a} now={now} />
          ))}
        </ul>
      </div>
    </section>
  );
}

function Stats({ items }: { items: [string, number][] }) {
  return (
    <dl class="stats">
      {items.map(([l, n]) => (
        <div key={l}>
          <dt>{l}</dt>
          <dd>{n}</dd>
        </div>
      ))}
    </dl>
  );
}
