// One event's page: the tabs a person's access gives them, live from the sync feed.
// A seat holder sees the whole event and its field data; a free member exactly their
// collaborator's five tabs; a read-only member the same with editing off. Each tab is in
// a file of its own beside this one.

import { useEffect, useState } from "preact/hooks";

import { type Ctx, tick } from "../state";
import { ApiError, type EventView, api } from "../api";
import { str } from "../derive";
import type { Page } from "./common";
import { Advances } from "./advances";
import { Field } from "./field";
import { Files } from "./files";
import { CollabDashboard, Overview } from "./overview";
import { Schedule } from "./schedule";
import { Board } from "./tasks";

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
