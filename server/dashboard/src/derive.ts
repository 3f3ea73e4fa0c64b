// What the panels show, computed from an event's records: no I/O, no DOM.

import type { WireRecord } from "./sync";

export type Data = Record<string, unknown>;
export const str = (d: Data, k: string): string => (typeof d[k] === "string" ? (d[k] as string) : "");

export const TASK_COLUMNS = [
  ["todo", "To do"],
  ["active", "In progress"],
  ["in_review", "In review"],
  ["done", "Done"],
] as const;
export type TaskStatus = (typeof TASK_COLUMNS)[number][0] | "archived";
export const TASK_STATUSES: (readonly [TaskStatus, string])[] = [...TASK_COLUMNS, ["archived", "Archived"]];

export const ADVANCE_STATUS: Record<string, string> = {
  not_started: "Not started",
  needs_review: "Needs review",
  done: "Done",
  archived: "Archived",
};

const byTitle = (a: WireRecord, b: WireRecord) =>
  str(a.data, "title").localeCompare(str(b.data, "title")) || a.id.localeCompare(b.id);

/** Tasks by status column, each column by title. */
export function board(tasks: WireRecord[]): Map<string, WireRecord[]> {
  const cols = new Map<string, WireRecord[]>(TASK_STATUSES.map(([s]) => [s, []]));
  for (const t of tasks) cols.get(str(t.data, "status"))?.push(t);
  for (const l of cols.values()) l.sort(byTitle);
  return cols;
}

/** The local calendar day of an RFC 3339 time, `YYYY-MM-DD`. */
export function localDay(iso: string): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  const p = (n: number) => String(n).padStart(2, "0");
  return `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())}`;
}

/** Activities by local day, in start order; days in order. */
export function schedule(activities: WireRecord[]): [string, WireRecord[]][] {
  const days = new Map<string, WireRecord[]>();
  const sorted = [...activities].sort(
    (a, b) => str(a.data, "starts_at").localeCompare(str(b.data, "starts_at")) || byTitle(a, b),
  );
  for (const a of sorted) {
    const d = localDay(str(a.data, "starts_at"));
    days.set(d, [...(days.get(d) ?? []), a]);
  }
  return [...days];
}

/** Today's activities: those that start today or are under way now. */
export function today(activities: WireRecord[], now: Date): WireRecord[] {
  const day = localDay(now.toISOString());
  return schedule(activities)
    .flatMap(([, l]) => l)
    .filter((a) => {
      const starts = Date.parse(str(a.data, "starts_at"));
      const ends = Date.parse(str(a.data, "ends_at"));
      return localDay(str(a.data, "starts_at")) === day || (starts <= now.getTime() && now.getTime() < ends);
    });
}

export interface GateMinutes {
  gate: string;
  name: string;
  /** Admissions in each minute of the window, oldest first. */
  minutes: number[];
  total: number;
}

/** Admissions per gate per minute over the `window` minutes ending at `now`. */
export function admissions(scans: WireRecord[], gates: WireRecord[], now: Date, window = 30): GateMinutes[] {
  const end = Math.floor(now.getTime() / 60_000);
  const rows = new Map<string, GateMinutes>();
  for (const g of gates) rows.set(g.id, { gate: g.id, name: str(g.data, "name") || g.id, minutes: Array(window).fill(0), total: 0 });
  for (const s of scans) {
    if (str(s.data, "decision") !== "admit") continue;
    const minute = Math.floor(Date.parse(str(s.data, "device_time")) / 60_000);
    const i = window - 1 - (end - minute);
    if (!(i >= 0 && i < window)) continue;
    const gate = str(s.data, "gate");
    let row = rows.get(gate);
    if (!row) rows.set(gate, (row = { gate, name: gate, minutes: Array(window).fill(0), total: 0 }));
    row.minutes[i] += 1;
    row.total += 1;
  }
  return [...rows.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export interface OnClock {
  person: string;
  since: string;
  onMeal: boolean;
}

/** People whose latest punch (by clock) leaves them on the clock. */
export function onTheClock(punches: WireRecord[]): OnClock[] {
  const last = new Map<string, WireRecord>();
  const inAt = new Map<string, string>();
  const sorted = [...punches].sort((a, b) => str(a.data, "hlc").localeCompare(str(b.data, "hlc")));
  for (const p of sorted) {
    const who = str(p.data, "person");
    last.set(who, p);
    if (str(p.data, "kind") === "in") inAt.set(who, str(p.data, "device_time"));
  }
  const out: OnClock[] = [];
  for (const [person, p] of last) {
    const kind = str(p.data, "kind");
    if (kind === "out") continue;
    out.push({ person, since: inAt.get(person) ?? str(p.data, "device_time"), onMeal: kind === "meal_start" });
  }
  return out.sort((a, b) => a.since.localeCompare(b.since));
}

export interface GearOut {
  asset: WireRecord;
  holder: string;
  dueAt: string;
  overdue: boolean;
}

/** Assets whose latest move (by clock) is a check-out, overdue first. */
export function gearOut(assets: WireRecord[], moves: WireRecord[], now: Date): GearOut[] {
  const latest = new Map<string, WireRecord>();
  for (const m of moves) {
    const a = str(m.data, "asset");
    const seen = latest.get(a);
    if (!seen || str(m.data, "hlc") > str(seen.data, "hlc")) latest.set(a, m);
  }
  const out: GearOut[] = [];
  for (const asset of assets) {
    const m = latest.get(asset.id) ?? latest.get(str(asset.data, "tag"));
    if (!m || str(m.data, "action") !== "check_out") continue;
    const dueAt = str(m.data, "due_at");
    out.push({ asset, holder: str(m.data, "holder"), dueAt, overdue: !!dueAt && Date.parse(dueAt) < now.getTime() });
  }
  return out.sort((a, b) => Number(b.overdue) - Number(a.overdue) || a.dueAt.localeCompare(b.dueAt));
}

/** A duration in words: "3 min", "2 h 05", "4 d". */
export function ago(iso: string, now: Date): string {
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return "—";
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}`;
  return `${Math.floor(s / 86_400)} d`;
}

export function clock(iso: string): string {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? "—" : t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
