// The BackOps sync protocol (version 1, docs/protocol.md) for browsers: one WebSocket,
// snapshots then live changes per event, pushes answered accepted/rejected, and resume from
// the cursors after any disconnect. No UI here: any web client can use it.
//
// The types mirror schemas/protocol/{client,server}.schema.json.

import kindTable from "../../../schemas/kinds.json";

export const PROTOCOL = 1;

export interface WireRecord {
  kind: string;
  id: string;
  data: Record<string, unknown>;
}

export type WireChange =
  | { op: "upsert"; seq: number; kind: string; id: string; data: Record<string, unknown> }
  | { op: "delete"; seq: number; kind: string; id: string }
  | { op: "remove"; seq: number; kind: string; id: string }
  | { op: "narrow"; seq: number; keep: string[]; keep_kinds: string[] };

export type MutationOp = "create" | "update" | "delete";

export interface Mutation {
  id: string;
  kind: string;
  op: MutationOp;
  record?: string;
  fields: Record<string, unknown>;
}

export type MutationResult =
  | { status: "accepted"; mutation: string; record: string; seq: number }
  | { status: "rejected"; mutation: string; code: string; message: string };

export interface Limits {
  frame_bytes_max: number;
  push_mutations_max: number;
  heartbeat_ms: number;
  [name: string]: number;
}

export type ServerMessage =
  | { type: "welcome"; protocol: number; session: string; account: string; limits: Limits }
  | { type: "snapshot"; event: string; cursor: number; records: WireRecord[]; last: boolean }
  | { type: "changes"; event: string; changes: WireChange[]; cursor: number }
  | { type: "ack"; event: string; results: MutationResult[] }
  | { type: "resync"; event: string; reason: string }
  | { type: "refused"; event: string; code: string; message: string }
  | { type: "pong"; cursors: Record<string, number> }
  | { type: "renewed"; expires_at: number }
  | { type: "error"; code: string; message: string };

/** Close codes the application uses (docs/protocol.md "Errors and close codes"). */
export const Close = {
  GoingAway: 1001,
  BadHello: 4000,
  UnsupportedVersion: 4001,
  TokenExpired: 4002,
  TokenInvalid: 4003,
  SignInEnded: 4004,
  SlowConsumer: 4008,
  Idle: 4009,
} as const;

/** The connection as a person should see it. */
export type Connection =
  | { state: "connecting" }
  | { state: "live" }
  | { state: "reconnecting"; attempt: number; reason: string }
  | { state: "offline" }
  | { state: "signed_out"; reason: string };

/** A record key within an event. */
export const key = (kind: string, id: string): string => `${kind}/${id}`;

/** How each kind names its owners: the engine's one kind table (engine/src/kind.rs), as
 * generated into schemas/kinds.json and checked there by the engine's tests. */
type OwnersRule =
  | { rule: "event" }
  | { rule: "itself" }
  | { rule: "field"; field: string }
  | { rule: "tags"; field: string }
  | { rule: "person"; field: string; prefix: string };
const OWNERS: Record<string, OwnersRule> = Object.fromEntries(
  Object.entries(kindTable.kinds).map(([kind, k]) => [kind, k.owners as OwnersRule]),
);

/** Which collaborators (or person) a record belongs to (docs/protocol.md "Records and changes"). */
export function owners(r: WireRecord): string[] {
  const d = r.data;
  const rule = OWNERS[r.kind];
  switch (rule?.rule) {
    case "itself":
      return [r.id];
    case "field":
      return typeof d[rule.field] === "string" ? [d[rule.field] as string] : [];
    case "tags":
      return Array.isArray(d[rule.field]) ? (d[rule.field] as string[]) : [];
    case "person":
      return typeof d[rule.field] === "string" ? [`${rule.prefix}${d[rule.field]}`] : [];
    default:
      return [];
  }
}

/** One followed event: its records as the server last said, and how far the feed got. */
export class EventFeed {
  /** Records by key (`kind/id`). */
  readonly records = new Map<string, WireRecord>();
  /** The same records by kind, then id. */
  private readonly kinds = new Map<string, Map<string, WireRecord>>();
  /** Set once the first snapshot is whole; changes apply after it. */
  cursor: number | null = null;
  /** A snapshot under way (replaces `records` when its last chunk arrives). */
  private incoming: Map<string, WireRecord> | null = null;
  refused: { code: string; message: string } | null = null;

  constructor(readonly event: string) {}

  snapshot(m: Extract<ServerMessage, { type: "snapshot" }>): boolean {
    this.incoming ??= new Map();
    for (const r of m.records) this.incoming.set(key(r.kind, r.id), r);
    if (!m.last) return false;
    this.clear();
    for (const r of this.incoming.values()) this.put(r);
    this.incoming = null;
    this.cursor = m.cursor;
    return true;
  }

  apply(m: Extract<ServerMessage, { type: "changes" }>): void {
    for (const c of m.changes) {
      switch (c.op) {
        case "upsert":
          this.put({ kind: c.kind, id: c.id, data: c.data });
          break;
        case "delete":
        case "remove":
          this.drop(c.kind, c.id);
          break;
        case "narrow": {
          const keep = new Set(c.keep);
          const kinds = new Set(c.keep_kinds);
          for (const r of [...this.records.values()]) {
            if (!kinds.has(r.kind) && !owners(r).some((o) => keep.has(o))) this.drop(r.kind, r.id);
          }
          break;
        }
      }
    }
    this.cursor = m.cursor;
  }

  of(kind: string): WireRecord[] {
    return [...(this.kinds.get(kind)?.values() ?? [])];
  }

  get(kind: string, id: string): WireRecord | undefined {
    return this.kinds.get(kind)?.get(id);
  }

  clear(): void {
    this.records.clear();
    this.kinds.clear();
  }

  private put(r: WireRecord): void {
    this.records.set(key(r.kind, r.id), r);
    let m = this.kinds.get(r.kind);
    if (!m) this.kinds.set(r.kind, (m = new Map()));
    m.set(r.id, r);
  }

  private drop(kind: string, id: string): void {
    this.records.delete(key(kind, id));
    this.kinds.get(kind)?.delete(id);
  }
}

/**
 * What a person should see of `kind`: the feed's records with the mutations still in flight
 * laid over them (a create shows at once, an edit in place, a delete hides the record). A
 * mutation the server rejects leaves the overlay, so the screen rolls back to the feed.
 */
export function project(feed: EventFeed | undefined, kind: string, overlay: Mutation[]): WireRecord[] {
  const base = feed ? feed.of(kind) : [];
  const mine = overlay.filter((m) => m.kind === kind && m.record);
  if (!mine.length) return base;
  const out = new Map(base.map((r) => [r.id, r] as const));
  for (const m of mine) {
    const id = m.record as string;
    const r = out.get(id);
    if (m.op === "delete") out.delete(id);
    else if (m.op === "create") out.set(id, { kind, id, data: { ...m.fields, ...(r?.data ?? {}), id } });
    else if (r) out.set(id, { kind, id, data: { ...r.data, ...m.fields } });
  }
  return [...out.values()];
}

export interface SyncOptions {
  /** `ws(s)://host/v1/sync`. */
  url: string;
  token: string;
  /** Stable per browser (1–64 of `A-Z a-z 0-9 _ . : -`). */
  device: string;
  /** Called after any change of records, connection or pending pushes. */
  onChange?: () => void;
  /** Mutations left unanswered by an earlier page of this device, to send again. */
  restore?: Record<string, Mutation[]>;
  /** Called with every unanswered mutation whenever that set changes (to keep it). */
  persist?: (pending: Record<string, Mutation[]>) => void;
  /** A rejected mutation, with the server's reason. */
  onRejected?: (event: string, mutation: Mutation, code: string, message: string) => void;
  /** Tests and tools may watch every frame received. */
  onFrame?: (m: ServerMessage) => void;
  /**
   * The token expired on an open connection: renew it (true) and the client reconnects at
   * once; false leaves it signed out.
   */
  renew?: () => Promise<boolean>;
  /** Opens the socket (defaults to the browser's WebSocket). */
  socket?: (url: string) => WebSocket;
}

const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10_000;

/**
 * A session over one WebSocket that follows events and pushes mutations. It reconnects by
 * itself (with backoff) and resumes every event from its cursor; pushes not yet answered are
 * sent again on the new connection (the server applies a mutation at most once).
 */
export class SyncClient {
  readonly feeds = new Map<string, EventFeed>();
  connection: Connection = { state: "connecting" };
  account: string | null = null;
  /** Mutations sent and not yet answered, by event, in order. */
  readonly pending = new Map<string, Mutation[]>();
  /** Accepted mutations whose change the feed has not brought yet, with its seq. */
  private readonly landing = new Map<string, { m: Mutation; seq: number }[]>();
  private ws: WebSocket | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private stopped = false;

  constructor(private opts: SyncOptions) {
    for (const [event, list] of Object.entries(opts.restore ?? {})) {
      if (Array.isArray(list) && list.length) this.pending.set(event, list);
    }
    if (typeof window !== "undefined") {
      window.addEventListener("online", () => this.reconnectNow());
      window.addEventListener("offline", () => this.ws?.close());
    }
    this.open();
  }

  /** Follows `event`: a snapshot first, then live changes. */
  follow(event: string): EventFeed {
    let feed = this.feeds.get(event);
    if (!feed) {
      feed = new EventFeed(event);
      this.feeds.set(event, feed);
      this.subscribe(feed);
    }
    return feed;
  }

  /** Stops following `event` (its records are forgotten; pushes still get their answers). */
  unfollow(event: string): void {
    if (this.feeds.delete(event)) this.send({ type: "unsubscribe", event });
    this.landing.delete(event);
  }

  /** Pushes one mutation; the record changes on screen when the change comes back. */
  push(event: string, m: Omit<Mutation, "id">): Mutation {
    const mutation: Mutation = { ...m, id: mutationId() };
    const list = this.pending.get(event) ?? [];
    list.push(mutation);
    this.pending.set(event, list);
    this.send({ type: "push", event, mutations: [mutation] });
    this.persist();
    this.changed();
    return mutation;
  }

  /** The mutations of `event` still to be seen in its feed: unanswered, or accepted and on their way. */
  overlay(event: string): Mutation[] {
    const landing = (this.landing.get(event) ?? []).map((x) => x.m);
    return [...landing, ...(this.pending.get(event) ?? [])];
  }

  /** What a person should see of one kind of an event (see [`project`]). */
  view(event: string, kind: string): WireRecord[] {
    return project(this.feeds.get(event), kind, this.overlay(event));
  }

  /** A renewed access token: the open connection takes it (`renew`), later ones sign in with it. */
  setToken(token: string): void {
    this.opts.token = token;
    this.send({ type: "renew", token });
  }

  pendingCount(): number {
    let n = 0;
    for (const l of this.pending.values()) n += l.length;
    return n;
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.ws?.close(1000);
  }

  private open(): void {
    if (this.stopped) return;
    const ws = (this.opts.socket ?? ((u) => new WebSocket(u)))(this.opts.url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "hello", protocol: PROTOCOL, token: this.opts.token, device: this.opts.device }));
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      let m: ServerMessage;
      try {
        m = JSON.parse(e.data) as ServerMessage;
      } catch {
        return;
      }
      this.opts.onFrame?.(m);
      this.receive(m);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.heartbeat) clearInterval(this.heartbeat);
      if (e.code === Close.TokenExpired && this.opts.renew) {
        this.connection = { state: "reconnecting", attempt: 1, reason: "renewing the sign-in" };
        this.changed();
        void this.opts.renew().then((ok) => {
          if (ok) this.open();
          else this.signedOut("Your sign-in has expired: sign in again.");
        });
        return;
      }
      if (e.code === Close.SignInEnded) {
        this.signedOut("This sign-in was ended (signed out on another device, a password change, or by your event's team). Sign in again; edits not yet sent are kept.");
        return;
      }
      if (e.code === Close.TokenInvalid || e.code === Close.TokenExpired || e.code === Close.UnsupportedVersion) {
        this.signedOut(e.reason || "signed out");
        return;
      }
      this.retry(e.reason || (typeof navigator !== "undefined" && !navigator.onLine ? "offline" : "connection lost"));
    };
  }

  private signedOut(reason: string): void {
    this.connection = { state: "signed_out", reason };
    this.changed();
  }

  private retry(reason: string): void {
    if (this.stopped) return;
    this.attempt += 1;
    const offline = typeof navigator !== "undefined" && !navigator.onLine;
    this.connection = offline ? { state: "offline" } : { state: "reconnecting", attempt: this.attempt, reason };
    this.changed();
    const wait = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.attempt - 1, 6));
    this.timer = setTimeout(() => this.open(), wait * (0.75 + Math.random() * 0.5));
  }

  /** Back online: try at once, with a fresh socket (one opened while offline is dead). */
  private reconnectNow(): void {
    if (this.stopped || this.ws?.readyState === WebSocket.OPEN) return;
    if (this.timer) clearTimeout(this.timer);
    const stale = this.ws;
    this.ws = null;
    stale?.close();
    this.attempt = 0;
    this.open();
  }

  private receive(m: ServerMessage): void {
    switch (m.type) {
      case "welcome": {
        this.account = m.account;
        this.attempt = 0;
        this.connection = { state: "live" };
        this.heartbeat = setInterval(() => this.send({ type: "ping" }), m.limits.heartbeat_ms);
        for (const feed of this.feeds.values()) this.subscribe(feed);
        for (const [event, list] of this.pending) if (list.length) this.send({ type: "push", event, mutations: list });
        break;
      }
      case "snapshot":
        if (this.feeds.get(m.event)?.snapshot(m)) this.landed(m.event);
        break;
      case "changes":
        this.feeds.get(m.event)?.apply(m);
        this.landed(m.event);
        break;
      case "resync": {
        const feed = this.feeds.get(m.event);
        if (feed) feed.cursor = null;
        break;
      }
      case "refused": {
        const feed = this.feeds.get(m.event);
        if (feed) {
          feed.refused = { code: m.code, message: m.message };
          feed.clear();
          feed.cursor = null;
        }
        this.landing.delete(m.event);
        break;
      }
      case "ack": {
        const list = this.pending.get(m.event) ?? [];
        for (const r of m.results) {
          const i = list.findIndex((x) => x.id === r.mutation);
          if (i < 0) continue;
          const [mutation] = list.splice(i, 1);
          if (r.status === "rejected") this.opts.onRejected?.(m.event, mutation, r.code, r.message);
          else {
            const landing = this.landing.get(m.event) ?? [];
            landing.push({ m: mutation, seq: r.seq });
            this.landing.set(m.event, landing);
          }
        }
        this.landed(m.event);
        this.persist();
        break;
      }
      case "pong":
        for (const [event, cursor] of Object.entries(m.cursors)) {
          const feed = this.feeds.get(event);
          if (feed && feed.cursor !== null && cursor > feed.cursor) feed.cursor = cursor;
          this.landed(event);
        }
        break;
      case "renewed":
      case "error":
        break;
    }
    this.changed();
  }

  private subscribe(feed: EventFeed): void {
    feed.refused = null;
    this.send(feed.cursor === null ? { type: "subscribe", event: feed.event } : { type: "subscribe", event: feed.event, cursor: feed.cursor });
  }

  private send(frame: Record<string, unknown>): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.connection.state === "live") {
      this.ws.send(JSON.stringify(frame));
    }
  }

  /** Forgets accepted mutations whose change the feed has brought (or skipped, unseen). */
  private landed(event: string): void {
    const cursor = this.feeds.get(event)?.cursor;
    const list = this.landing.get(event);
    if (!list || cursor == null) return;
    const left = list.filter((x) => x.seq > cursor);
    if (left.length) this.landing.set(event, left);
    else this.landing.delete(event);
  }

  private persist(): void {
    this.opts.persist?.(Object.fromEntries([...this.pending].filter(([, l]) => l.length)));
  }

  private changed(): void {
    this.opts.onChange?.();
  }
}

/** A random (version 4) UUID; `crypto.randomUUID` exists only on secure origins. */
export function uuid(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A time-ordered mutation id (milliseconds, then randomness). */
export function mutationId(): string {
  const t = Date.now().toString(16).padStart(12, "0");
  const r = crypto.getRandomValues(new Uint8Array(10));
  return t + Array.from(r, (b) => b.toString(16).padStart(2, "0")).join("");
}
