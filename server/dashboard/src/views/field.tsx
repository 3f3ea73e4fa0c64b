// The Field tab (seat holders): admissions per gate per minute, duplicate entries, crew on
// the clock, gear out and overdue, devices.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import { tick, toast } from "../state";
import { ApiError, type DeviceSeen, api } from "../api";
import { admissions, ago, clock, gearOut, onTheClock, str } from "../derive";
import { type Page, useNow } from "./common";

export function Field({ p }: { p: Page }) {
  const now = useNow(15_000);
  const scans = p.view("scan");
  const gates = p.view("gate");
  const rows = useMemo(() => admissions(scans, gates, now), [tick.value, now]);
  const credentials = new Map(p.view("credential").map((c) => [str(c.data, "uid"), c] as const));
  const gateName = (id: string) => gates.find((g) => g.id === id)?.data.name as string | undefined;
  const flags = p.view("scan_flag").sort((a, b) => str(b.data, "raised_at").localeCompare(str(a.data, "raised_at")));
  const crew = onTheClock(p.view("punch"));
  const gear = gearOut(p.view("asset"), p.view("custody"), now);
  return (
    <section class="grid" aria-label="Field">
      <div class="panel wide" data-testid="admissions">
        <h3>Admissions per gate per minute, last 30 min</h3>
        {rows.length ? rows.map((g) => <GateChart key={g.gate} g={g} />) : <p class="muted">No gates set up.</p>}
        {rows.length > 0 && (
          <div class="axis muted" aria-hidden="true">
            <span>{clock(new Date(now.getTime() - 29 * 60_000).toISOString())}</span>
            <span>now</span>
          </div>
        )}
      </div>
      <div class="panel" data-testid="duplicates">
        <h3>
          Duplicate entries <span class="count">{flags.length}</span>
        </h3>
        {flags.length === 0 && <p class="muted">None.</p>}
        <ul class="list">
          {flags.slice(0, 50).map((f) => (
            <li key={f.id}>
              <span class="what">{str(credentials.get(str(f.data, "credential"))?.data ?? {}, "holder_name") || "A credential"}</span>
              <span class="muted">
                {str(f.data, "code") === "duplicate_entry" ? "admitted twice" : "admitted while revoked"} · {gateName(str(f.data, "gate")) ?? "a gate"} ·{" "}
                {clock(str(f.data, "raised_at"))}
              </span>
            </li>
          ))}
        </ul>
      </div>
      <div class="panel" data-testid="crew">
        <h3>
          Crew on the clock <span class="count">{crew.length}</span>
        </h3>
        {crew.length === 0 && <p class="muted">Nobody is clocked in.</p>}
        <ul class="list">
          {crew.map((c) => (
            <li key={c.person}>
              <span class="what">{p.names.get(c.person) ?? "Crew member"}</span>
              <span class="muted">
                {c.onMeal ? "on a meal break" : "working"} · since {clock(c.since)} ({ago(c.since, now)})
              </span>
            </li>
          ))}
        </ul>
      </div>
      <div class="panel" data-testid="gear">
        <h3>
          Gear out <span class="count">{gear.length}</span> · overdue <span class="count warn">{gear.filter((g) => g.overdue).length}</span>
        </h3>
        {gear.length === 0 && <p class="muted">All gear is in.</p>}
        <ul class="list">
          {gear.map((g) => (
            <li key={g.asset.id} class={g.overdue ? "overdue" : ""} data-testid={g.overdue ? "overdue" : "out"}>
              <span class="what">
                {str(g.asset.data, "name") || str(g.asset.data, "tag")} <span class="muted">{str(g.asset.data, "tag")}</span>
              </span>
              <span class="muted">
                {p.names.get(g.holder) ?? (g.holder || "someone")} · {g.dueAt ? `${g.overdue ? "was due" : "due"} ${clock(g.dueAt)}` : "no due time"}
              </span>
            </li>
          ))}
        </ul>
      </div>
      <Devices p={p} now={now} />
    </section>
  );
}

function GateChart({ g }: { g: ReturnType<typeof admissions>[number] }) {
  const max = Math.max(1, ...g.minutes);
  const w = 4;
  return (
    <div class="gate-row" data-testid="gate-row" data-gate={g.name} data-total={g.total}>
      <span class="gate-name">{g.name}</span>
      <svg viewBox={`0 0 ${g.minutes.length * w} 24`} preserveAspectRatio="none" role="img" aria-label={`${g.name}: ${g.total} admissions in 30 minutes`}>
        {g.minutes.map((n, i) => (
          <rect key={i} x={i * w + 0.5} width={w - 1} y={24 - (n / max) * 24} height={(n / max) * 24}>
            <title>{`${n} in minute ${i - g.minutes.length + 1}`}</title>
          </rect>
        ))}
      </svg>
      <span class="gate-total">{g.total}</span>
    </div>
  );
}

function Devices({ p, now }: { p: Page; now: Date }) {
  const [devices, setDevices] = useState<DeviceSeen[] | null>(null);
  const mounted = useRef(true);
  useEffect(() => {
    mounted.current = true;
    const load = () =>
      api
        .devices(p.ctx.session.token, p.event)
        .then((d) => mounted.current && setDevices(d))
        .catch((e) => e instanceof ApiError && e.status !== 0 && toast(e.message));
    load();
    const t = setInterval(load, 10_000);
    return () => {
      mounted.current = false;
      clearInterval(t);
    };
  }, [p.event]);
  return (
    <div class="panel wide" data-testid="devices">
      <h3>Devices {devices && <span class="count">{devices.filter((d) => d.connected).length} connected</span>}</h3>
      {!devices ? (
        <p class="muted">Loading…</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Device</th>
              <th>Person</th>
              <th>Last sync</th>
            </tr>
          </thead>
          <tbody>
            {devices.slice(0, 100).map((d) => (
              <tr key={`${d.account}/${d.device}`}>
                <td>
                  <span class={d.connected ? "dot on" : "dot"} aria-label={d.connected ? "connected" : "not connected"} /> {d.device}
                </td>
                <td>{p.names.get(d.account) ?? "—"}</td>
                <td>{d.connected ? "connected now" : `${ago(d.last_seen, now)} ago`}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
