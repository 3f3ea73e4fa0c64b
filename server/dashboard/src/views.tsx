// One event's page: the tabs a person's access gives them, live from the sync feed.
// A seat holder sees the whole event and its field data; a free member exactly their
// collaborator's five tabs; a read-only member the same with editing off.

import { signal } from "@preact/signals";
import type { JSX } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";

import { type Ctx, tick, toast } from "./state";
import { ApiError, type Access, type DeviceSeen, type EventView, type Links, api } from "./api";
import {
  ADVANCE_STATUS,
  TASK_COLUMNS,
  TASK_STATUSES,
  admissions,
  ago,
  board,
  bytes,
  clock,
  gearOut,
  localDay,
  onTheClock,
  schedule,
  str,
  today,
} from "./derive";
import { type SyncClient, type WireRecord, uuid } from "./sync";
import { type Progress, uploadFile } from "./upload";

interface Page {
  ctx: Ctx;
  event: string;
  access: Access;
  canEdit: boolean;
  names: Map<string, string>;
  view: (kind: string) => WireRecord[];
  collabName: (id: string) => string;
}

const SEAT_TABS = [
  ["overview", "Overview"],
  ["tasks", "Tasks"],
  ["schedule", "Schedule"],
  ["files", "Files"],
  ["advances", "Advances"],
  ["field", "Field"],
] as const;
/** The five tabs of a collaborator (free access). */
const FREE_TABS = [
  ["dashboard", "Dashboard"],
  ["tasks", "Tasks"],
  ["schedule", "Schedule"],
  ["files", "Files"],
  ["advances", "Advances"],
] as const;

/** Re-renders every `ms` (times shown as "3 min ago", overdue gear, the chart's window). */
function useNow(ms: number): Date {
  const [now, setNow] = useState(new Date());
  useEffect(() => {
    const t = setInterval(() => setNow(new Date()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function EventPage({ ctx, event, tab }: { ctx: Ctx; event: string; tab: string }) {
  const { client } = ctx;
  const [ev, setEv] = useState<EventView | null>(null);
  const [lost, setLost] = useState("");
  const [names, setNames] = useState(new Map<string, string>());

  useEffect(() => {
    client.follow(event);
    const t = ctx.session.token;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const load = () => {
      api
        .event(t, event)
        .then((v) => {
          setEv(v);
          setLost("");
        })
        .catch((e) => {
          if (e instanceof ApiError && e.status === 404) setLost("You no longer have access to this event.");
        });
      api
        .people(t, event)
        .then((p) => setNames(new Map([...p.map((x) => [x.id, x.name] as [string, string]), [ctx.session.account.id, "You"]])))
        .catch(() => {});
    };
    load();
    const onAccess = (e: string) => {
      if (e !== event) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(load, 150);
    };
    ctx.onAccess.add(onAccess);
    return () => {
      ctx.onAccess.delete(onAccess);
      if (timer) clearTimeout(timer);
      client.unfollow(event);
    };
  }, [event]);

  void tick.value;
  const feed = client.feeds.get(event);
  if (lost || feed?.refused) {
    return (
      <main class="page">
        <p class="notice" data-testid="lost">
          {lost || "You no longer have access to this event, or it does not exist."}
        </p>
        <a href="#/">Back to your events</a>
      </main>
    );
  }
  if (!ev || !feed || feed.cursor === null) return <p class="muted page">Loading the event…</p>;

  const access = ev.access;
  if (!access.seat && !access.collaborator) {
    return (
      <main class="page">
        <h2>{ev.name}</h2>
        <p class="notice" data-testid="no-tabs">
          Your organization role lets you manage this event, not see its work. Take one of its Event Pro seats, or join a
          collaborator, to see it here.
        </p>
      </main>
    );
  }
  const tabs = access.seat ? SEAT_TABS : FREE_TABS;
  const current = tabs.find(([t]) => t === tab)?.[0] ?? tabs[0][0];
  const collaborators = new Map(feed.of("collaborator").map((c) => [c.id, str(c.data, "name")]));
  const page: Page = {
    ctx,
    event,
    access,
    canEdit: !access.read_only,
    names,
    view: (kind) => client.view(event, kind),
    collabName: (id) => collaborators.get(id) ?? "—",
  };
  const own = access.collaborator ? collaborators.get(access.collaborator) : undefined;
  return (
    <main class="event" data-testid="event" data-mode={access.seat ? "seat" : access.read_only ? "read-only" : "member"}>
      <div class="event-head">
        <h2>{ev.name}</h2>
        <span class="muted">
          {access.seat ? "Event Pro seat · the whole event" : `${own ?? "Your collaborator"}${access.read_only ? " · read-only" : ""}`}
        </span>
        {access.read_only && (
          <span class="badge" data-testid="read-only">
            Read-only
          </span>
        )}
      </div>
      <nav class="tabs" aria-label="Tabs">
        {tabs.map(([t, label]) => (
          <a
            key={t}
            href={`#/e/${encodeURIComponent(event)}/${t}`}
            class={t === current ? "on" : ""}
            aria-current={t === current ? "page" : undefined}
            data-testid={`tab-${t}`}
          >
            {label}
          </a>
        ))}
      </nav>
      {current === "overview" && <Overview p={page} />}
      {current === "dashboard" && <CollabDashboard p={page} />}
      {current === "tasks" && <Board p={page} />}
      {current === "schedule" && <Schedule p={page} />}
      {current === "files" && <Files p={page} />}
      {current === "advances" && <Advances p={page} />}
      {current === "field" && <Field p={page} />}
    </main>
  );
}

function pendingIds(client: SyncClient, event: string): Set<string> {
  return new Set(client.pending.get(event)?.map((m) => m.record ?? "") ?? []);
}

// ---- tasks ----

function Board({ p }: { p: Page }) {
  const { client } = p.ctx;
  const tasks = p.view("task");
  const cols = board(tasks);
  const saving = pendingIds(client, p.event);
  const archived = cols.get("archived")?.length ?? 0;
  return (
    <section aria-label="Tasks">
      {p.canEdit && <NewTask p={p} />}
      <div class="board">
        {TASK_COLUMNS.map(([status, label]) => (
          <div class="column" key={status} data-testid={`column-${status}`}>
            <h3>
              {label} <span class="count">{cols.get(status)?.length ?? 0}</span>
            </h3>
            {cols.get(status)?.map((t) => <TaskCard key={t.id} p={p} task={t} saving={saving.has(t.id)} />)}
          </div>
        ))}
      </div>
      {archived > 0 && <p class="muted">{archived} archived</p>}
    </section>
  );
}

/**
 * The collaborator a new task or file goes to: a seat holder chooses it (the select this
 * returns), a member's is their own (no select).
 */
function useFolder(p: Page, testid: string, label: string): [string, JSX.Element | null] {
  const [chosen, setChosen] = useState("");
  if (!p.access.seat) return [p.access.collaborator ?? "", null];
  const collabs = p.view("collaborator").sort((a, b) => str(a.data, "name").localeCompare(str(b.data, "name")));
  const target = chosen || collabs[0]?.id || "";
  const select = (
    <select data-testid={testid} aria-label={label} value={target} onChange={(e) => setChosen(e.currentTarget.value)}>
      {collabs.map((c) => (
        <option key={c.id} value={c.id}>
          {str(c.data, "name")}
        </option>
      ))}
    </select>
  );
  return [target, select];
}

function NewTask({ p }: { p: Page }) {
  const [title, setTitle] = useState("");
  const [target, folder] = useFolder(p, "new-task-collaborator", "Collaborator");
  const submit = (e: Event) => {
    e.preventDefault();
    const t = title.trim();
    if (!t) return;
    p.ctx.client.push(p.event, { kind: "task", op: "create", record: uuid(), fields: { collaborator: target, title: t, status: "todo" } });
    setTitle("");
  };
  return (
    <form class="new-task" onSubmit={submit} aria-label="New task">
      <input
        data-testid="new-task-title"
        placeholder="New task"
        maxLength={200}
        value={title}
        onInput={(e) => setTitle(e.currentTarget.value)}
        aria-label="New task title"
      />
      {folder}
      <button type="submit" data-testid="new-task-add" disabled={!title.trim() || !target}>
        Add
      </button>
    </form>
  );
}

function TaskCard({ p, task, saving }: { p: Page; task: WireRecord; saving: boolean }) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState("");
  // Enter saves and unmounts the input, whose blur would save again: one edit, one push.
  const open = useRef(false);
  const d = task.data;
  const push = (fields: Record<string, unknown>) =>
    p.ctx.client.push(p.event, { kind: "task", op: "update", record: task.id, fields });
  const close = (keep: boolean) => {
    if (!open.current) return;
    open.current = false;
    setEditing(false);
    const t = draft.trim();
    if (keep && t && t !== str(d, "title")) push({ title: t });
  };
  const save = () => close(true);
  const due = str(d, "due");
  return (
    <article class={`card${saving ? " saving" : ""}`} data-testid="task-card" data-id={task.id} data-title={str(d, "title")}>
      {editing ? (
        <input
          class="title-edit"
          data-testid="task-title-input"
          value={draft}
          maxLength={200}
          ref={(el) => el?.focus()}
          onInput={(e) => setDraft(e.currentTarget.value)}
          onBlur={save}
          onKeyDown={(e) => {
            if (e.key === "Enter") save();
            if (e.key === "Escape") close(false);
          }}
          aria-label="Task title"
        />
      ) : (
        <button
          class="title"
          data-testid="task-title"
          disabled={!p.canEdit}
          title={p.canEdit ? "Edit the title" : undefined}
          onClick={() => {
            setDraft(str(d, "title"));
            open.current = true;
            setEditing(true);
          }}
        >
          {str(d, "title")}
        </button>
      )}
      <div class="meta">
        {p.access.seat && <span class="chip">{p.collabName(str(d, "collaborator"))}</span>}
        {str(d, "assignee") && <span>{p.names.get(str(d, "assignee")) ?? "Assigned"}</span>}
        {due && <span>due {localDay(due)}</span>}
        {saving && <span class="muted">saving…</span>}
      </div>
      <select
        data-testid="task-status"
        aria-label="Status"
        disabled={!p.canEdit}
        value={str(d, "status")}
        onChange={(e) => push({ status: e.currentTarget.value })}
      >
        {TASK_STATUSES.map(([s, label]) => (
          <option key={s} value={s}>
            {label}
          </option>
        ))}
      </select>
    </article>
  );
}

// ---- schedule ----

function Schedule({ p }: { p: Page }) {
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

function Activity({ p, a, now }: { p: Page; a: WireRecord; now: Date }) {
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

// ---- files ----

/** Short-lived links (5 min) of a file, asked for when shown and renewed before they lapse. */
const linkCache = new Map<string, Links>();

function useLinks(p: Page, file: WireRecord): Links | null {
  const k = `${p.event}/${file.id}/${str(file.data, "content_hash")}`;
  const [links, setLinks] = useState<Links | null>(() => fresh(linkCache.get(k)));
  useEffect(() => {
    let stop = false;
    const get = () =>
      api
        .links(p.ctx.session.token, p.event, file.id)
        .then((l) => {
          linkCache.set(k, l);
          if (!stop) setLinks(l);
        })
        .catch(() => {});
    if (!fresh(linkCache.get(k))) get();
    const t = setInterval(() => fresh(linkCache.get(k)) || get(), 30_000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [k]);
  return links;
}

function fresh(l: Links | undefined): Links | null {
  return l && l.expires_at * 1000 > Date.now() + 60_000 ? l : null;
}

function Files({ p }: { p: Page }) {
  const files = p.view("file_meta").sort((a, b) => str(b.data, "created_at").localeCompare(str(a.data, "created_at")));
  return (
    <section aria-label="Files">
      {p.canEdit && <Uploader p={p} />}
      {!files.length && <p class="muted">No files yet. Photos taken on crew phones appear here as they upload.</p>}
      <div class="files">
        {files.map((f) => (
          <FileCard key={f.id} p={p} f={f} />
        ))}
      </div>
    </section>
  );
}

/** Uploads under way or finished in this page, by a key of their own. */
const uploads = signal<{ key: number; name: string; progress: Progress }[]>([]);
let uploadKey = 0;

function Uploader({ p }: { p: Page }) {
  const [target, folder] = useFolder(p, "upload-folder", "Folder");
  const start = (list: FileList | null) => {
    for (const file of Array.from(list ?? [])) {
      const key = ++uploadKey;
      const set = (progress: Progress) =>
        (uploads.value = uploads.value.map((u) => (u.key === key ? { ...u, progress } : u)));
      uploads.value = [...uploads.value, { key, name: file.name, progress: { phase: "hashing" as const, done: 0, size: file.size } }].slice(-20);
      uploadFile(p.ctx.session.token, p.event, target || null, file, set).catch((e) => {
        const error = e instanceof ApiError ? e.message : "The upload failed.";
        set({ phase: "failed", done: 0, size: file.size, error });
        toast(`Uploading ${file.name} failed: ${error}`);
      });
    }
  };
  return (
    <div class="uploader">
      <label class="button">
        Upload files
        <input type="file" multiple data-testid="upload-input" onChange={(e) => start(e.currentTarget.files)} />
      </label>
      {folder}
      <ul class="list">
        {uploads.value.map((u) => (
          <li key={u.key} data-testid="upload" data-phase={u.progress.phase}>
            <span class="what">{u.name}</span>
            <span class="muted">
              {u.progress.phase === "failed"
                ? u.progress.error
                : u.progress.phase === "done"
                  ? "uploaded"
                  : `${u.progress.phase} ${u.progress.size ? Math.floor((100 * u.progress.done) / u.progress.size) : 100}%`}
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function FileCard({ p, f }: { p: Page; f: WireRecord }) {
  const links = useLinks(p, f);
  const d = f.data;
  const thumb = links?.thumbnails["256"];
  const withheld = d.original_withheld === true && str(d, "uploaded_by") !== p.ctx.session.account.id;
  return (
    <figure class="file" data-testid="file" data-name={str(d, "name")}>
      <div class="thumb">{thumb ? <img src={thumb} alt={str(d, "name")} loading="lazy" data-testid="thumbnail" /> : <span class="ext">{ext(str(d, "name"))}</span>}</div>
      <figcaption>
        <strong title={str(d, "name")}>{str(d, "name")}</strong>
        <span class="muted">
          {bytes(Number(d.size ?? 0))}
          {p.access.seat && ` · ${p.collabName(str(d, "collaborator"))}`} · {p.names.get(str(d, "uploaded_by")) ?? "someone"}
        </span>
        {str(d, "preview_note") && <span class="muted note">{str(d, "preview_note")}</span>}
        {withheld ? (
          <span class="muted note">Original withheld: it may carry location data that could not be removed.</span>
        ) : (
          links && (
            <a href={links.content} download={str(d, "name")} rel="noopener">
              Download
            </a>
          )
        )}
      </figcaption>
    </figure>
  );
}

const ext = (name: string) => (name.includes(".") ? name.split(".").pop()!.slice(0, 5).toUpperCase() : "FILE");

// ---- advances ----

function Advances({ p }: { p: Page }) {
  const list = p.view("advance").sort((a, b) => str(a.data, "title").localeCompare(str(b.data, "title")));
  const review = list.filter((a) => str(a.data, "status") === "needs_review");
  const rest = list.filter((a) => str(a.data, "status") !== "needs_review");
  if (!list.length) return <p class="muted">No advances yet.</p>;
  return (
    <section aria-label="Advances">
      <h3>Awaiting review {review.length > 0 && <span class="count">{review.length}</span>}</h3>
      {review.length === 0 && <p class="muted">Nothing waits for review.</p>}
      <ul class="list">
        {review.map((a) => (
          <AdvanceRow key={a.id} p={p} a={a} />
        ))}
      </ul>
      <h3>All advances</h3>
      <ul class="list">
        {rest.map((a) => (
          <AdvanceRow key={a.id} p={p} a={a} />
        ))}
      </ul>
    </section>
  );
}

function AdvanceRow({ p, a }: { p: Page; a: WireRecord }) {
  const status = str(a.data, "status");
  const [open, setOpen] = useState(false);
  return (
    <li data-testid="advance" data-title={str(a.data, "title")} class="advance">
      <button class="link what" data-testid="advance-open" aria-expanded={open} onClick={() => setOpen(!open)}>
        {str(a.data, "title")}
      </button>
      {p.access.seat && <span class="chip">{p.collabName(str(a.data, "collaborator"))}</span>}
      <span class={`badge ${status}`}>{ADVANCE_STATUS[status] ?? status}</span>
      {p.access.seat && status === "needs_review" && (
        <button
          class="small"
          data-testid="approve"
          onClick={() => p.ctx.client.push(p.event, { kind: "advance", op: "update", record: a.id, fields: { status: "done" } })}
        >
          Approve
        </button>
      )}
      {open && <Answers p={p} a={a} done={() => setOpen(false)} />}
    </li>
  );
}

/** An advance's answers as question → answer lines; members answer, the team reviews. */
function Answers({ p, a, done }: { p: Page; a: WireRecord; done: () => void }) {
  const given = (a.data.answers ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  const [rows, setRows] = useState<[string, string][]>(() => Object.entries(given).map(([k, v]) => [k, text(v)]));
  const set = (i: number, at: 0 | 1, v: string) => setRows(rows.map((r, j) => (j === i ? (at ? [r[0], v] : [v, r[1]]) : r)));
  const save = (e: Event) => {
    e.preventDefault();
    const answers: Record<string, unknown> = {};
    for (const [k, v] of rows) {
      const key = k.trim();
      if (!key) continue;
      // A value that was not text (a number, a list) stays what it was if it still parses.
      let value: unknown = v;
      if (key in given && typeof given[key] !== "string") {
        try {
          value = JSON.parse(v);
        } catch {
          value = v;
        }
      }
      answers[key] = value;
    }
    p.ctx.client.push(p.event, { kind: "advance", op: "update", record: a.id, fields: { answers } });
    done();
  };
  return (
    <form class="answers" onSubmit={save} aria-label="Answers">
      {rows.length === 0 && <p class="muted">No answers yet.</p>}
      {rows.map(([k, v], i) => (
        <div class="answer" key={i}>
          <input aria-label="Question" value={k} maxLength={200} disabled={!p.canEdit} onInput={(e) => set(i, 0, e.currentTarget.value)} />
          <input aria-label="Answer" data-testid="answer" value={v} disabled={!p.canEdit} onInput={(e) => set(i, 1, e.currentTarget.value)} />
        </div>
      ))}
      {p.canEdit && (
        <div class="row">
          <button type="button" class="link" data-testid="add-answer" onClick={() => setRows([...rows, ["", ""]])}>
            Add a line
          </button>
          <button type="submit" class="small" data-testid="save-answers">
            Send answers
          </button>
        </div>
      )}
    </form>
  );
}

// ---- overview (seat holders) and the collaborator's dashboard (free access) ----

function counts(tasks: WireRecord[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const t of tasks) c[str(t.data, "status")] = (c[str(t.data, "status")] ?? 0) + 1;
  return c;
}

function Overview({ p }: { p: Page }) {
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

function CollabDashboard({ p }: { p: Page }) {
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

// ---- field data (seat holders) ----

function Field({ p }: { p: Page }) {
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
