// The Schedule tab: the activities day by day, today's marked and the ones under way now.

import { clock, localDay, schedule, str } from "../derive";
import type { WireRecord } from "../sync";
import { type Page, useNow } from "./common";

export function Schedule({ p }: { p: Page }) {
  const now = useNow(60_000);
  const days = schedule(p.view("activity"));
  const day = localDay(now.toISOString());
  if (!days.length) return <p class="muted">Nothing on the schedule yet.</p>;
  return (
    <section aria-label="Schedule" class="schedule">
      {days.map(([d, items]) => (
        <div key={d} class={d === day ? "day today" : "day"} data-testid={d === day ? "today" : undefined}>
          <h3>{d === day ? `Today · ${d}` : d}</h3>
          <ul>
            {items.map((a) => (
              <Activity key={a.id} p={p} a={a} now={now} />
            ))}
          </ul>
        </div>
      ))}
    </section>
  );
}

export function Activity({ p, a, now }: { p: Page; a: WireRecord; now: Date }) {
  const starts = str(a.data, "starts_at");
  const ends = str(a.data, "ends_at");
  const live = Date.parse(starts) <= now.getTime() && now.getTime() < Date.parse(ends);
  const collabs = Array.isArray(a.data.collaborators) ? (a.data.collaborators as string[]) : [];
  return (
    <li class={live ? "activity live" : "activity"} data-testid="activity">
      <span class="when">
        {clock(starts)}–{clock(ends)}
      </span>
      <span class="what">{str(a.data, "title")}</span>
      {str(a.data, "area") && <span class="muted">{str(a.data, "area")}</span>}
      {p.access.seat && collabs.map((c) => <span class="chip" key={c}>{p.collabName(c)}</span>)}
      {live && <span class="badge live">now</span>}
    </li>
  );
}
