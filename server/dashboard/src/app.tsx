// The dashboard's shell: sign-in, picking an event, the connection bar, and the one sync
// session every open event shares. The event's tabs are in views/ (views/event.tsx routes them).

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { ApiError, api, type EventView, type Org, type Session } from "./api";
import { STORE_SESSION, SignIn as Kept, storedSession } from "./signin";
import { type Connection, type Mutation, SyncClient, mutationId } from "./sync";
import { type Ctx, tick, toast, toasts } from "./state";
import { EventPage } from "./views/event";

const STORE_DEVICE = "backops.device";
const storePending = (account: string) => `backops.pending.${account}`;

function readJson<T>(k: string): T | null {
  try {
    const v = localStorage.getItem(k);
    return v ? (JSON.parse(v) as T) : null;
  } catch {
    return null;
  }
}

/** This browser's stable device name: it keys the server's at-most-once record of pushes. */
function deviceId(): string {
  let d = localStorage.getItem(STORE_DEVICE);
  if (!d || !/^[A-Za-z0-9_.:-]{1,64}$/.test(d)) {
    d = `web-${mutationId().slice(-16)}`;
    localStorage.setItem(STORE_DEVICE, d);
  }
  return d;
}

const ACCESS_KINDS = new Set(["seat", "collab_member", "collaborator", "module_grant", "event"]);

function connect(kept: Kept, signOut: (why: string) => void): Ctx {
  const session = kept.session;
  const onAccess = new Set<(event: string) => void>();
  let scheduled = false;
  const bump = () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      tick.value++;
    });
  };
  const client = new SyncClient({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/sync`,
    token: session.token,
    device: deviceId(),
    restore: readJson<Record<string, Mutation[]>>(storePending(session.account.id)) ?? undefined,
    persist: (p) => localStorage.setItem(storePending(session.account.id), JSON.stringify(p)),
    onChange: () => {
      bump();
      if (client.connection.state === "signed_out") signOut(client.connection.reason);
    },
    renew: () => kept.renew(),
    onRejected: (_e, m, code, message) => toast(`${describe(m)} was refused and undone: ${message} (${code})`),
    onFrame: (m) => {
      if (m.type !== "changes") return;
      if (m.changes.some((c) => c.op === "narrow" || ACCESS_KINDS.has(c.kind))) onAccess.forEach((f) => f(m.event));
    },
  });
  return { session, client, onAccess, signIn: kept };
}

/** Keeps `s` (renewed as it goes) and connects with it; a token already due is renewed first. */
async function start(s: Session, signOut: (why: string) => void): Promise<Ctx | null> {
  let ctx: Ctx | null = null;
  let ended = false;
  const kept = new Kept(
    s,
    (token) => ctx?.client.setToken(token),
    (why) => {
      ended = true;
      signOut(why);
    },
  );
  // Offline, the renewal is tried again as the page goes; the page still opens.
  if (kept.due()) await kept.renew();
  if (ended) return null;
  ctx = connect(kept, signOut);
  kept.start();
  return ctx;
}

function describe(m: Mutation): string {
  const title = typeof m.fields.title === "string" ? ` “${m.fields.title}”` : "";
  const what = m.kind === "task" ? "task" : m.kind;
  return m.op === "create" ? `Creating the ${what}${title}` : m.op === "delete" ? `Deleting the ${what}` : `Your edit of the ${what}${title}`;
}

function useHash(): string {
  const [h, setH] = useState(location.hash);
  useEffect(() => {
    const f = () => setH(location.hash);
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  return h;
}

function App() {
  const [ctx, setCtx] = useState<Ctx | null>(null);
  const [notice, setNotice] = useState("");
  // Bumped when the email is proven: what waited for it (events) is loaded again.
  const [proven, setProven] = useState(0);
  const hash = useHash();

  const signOut = (why: string) => {
    localStorage.removeItem(STORE_SESSION);
    setCtx((c) => {
      c?.signIn.stop();
      c?.client.close();
      return null;
    });
    setNotice(why);
  };
  const begin = (s: Session) => void start(s, signOut).then((c) => c && setCtx(c));

  useEffect(() => {
    const s = storedSession();
    if (s) begin(s);
  }, []);

  if (!ctx) {
    return (
      <SignIn
        notice={notice}
        done={(s) => {
          setNotice("");
          begin(s);
        }}
      />
    );
  }
  const m = /^#\/e\/([^/]+)(?:\/([a-z]+))?/.exec(hash);
  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/">
          <img src="/icon.svg" alt="" width="22" height="22" /> BackOps
        </a>
        <ConnectionBar client={ctx.client} />
        <span class="who" data-testid="who">
          {ctx.session.account.name}
        </span>
        <button
          class="link"
          data-testid="sign-out"
          onClick={() => {
            const n = ctx.client.pendingCount();
            // Ended on the server too: the token and its refresh token are no good anywhere.
            api.signOut(ctx.session.token).catch(() => undefined);
            signOut(n ? `Signed out. ${n} edit${n > 1 ? "s" : ""} not yet sent will go the next time you sign in here.` : "Signed out.");
          }}
        >
          Sign out
        </button>
      </header>
      <ProveEmail ctx={ctx} proven={() => setProven((n) => n + 1)} />
      {m ? (
        <EventPage key={m[1]} ctx={ctx} event={decodeURIComponent(m[1])} tab={m[2] ?? ""} />
      ) : (
        <Picker key={proven} ctx={ctx} />
      )}
      <Toasts />
    </div>
  );
}

function label(c: Connection): [string, string] {
  switch (c.state) {
    case "live":
      return ["live", "Live"];
    case "connecting":
      return ["connecting", "Connecting…"];
    case "reconnecting":
      return ["reconnecting", `Reconnecting (try ${c.attempt})…`];
    case "offline":
      return ["offline", "Offline"];
    case "signed_out":
      return ["offline", "Signed out"];
  }
}

export function ConnectionBar({ client }: { client: SyncClient }) {
  void tick.value;
  const [cls, text] = label(client.connection);
  const pending = client.pendingCount();
  return (
    <span class={`conn ${cls}`} data-testid="connection" data-state={client.connection.state} role="status">
      <span class="dot" aria-hidden="true" />
      {text}
      {pending > 0 && (
        <span class="pending" data-testid="pending">
          {" "}
          · {pending} pending
        </span>
      )}
    </span>
  );
}

function Toasts() {
  return (
    <div class="toasts" role="alert" aria-live="assertive">
      {toasts.value.map((t) => (
        <div class="toast" key={t.id} data-testid="toast">
          {t.text}
          <button class="link" aria-label="Dismiss" onClick={() => (toasts.value = toasts.value.filter((x) => x.id !== t.id))}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

function SignIn({ done, notice }: { done: (s: Session) => void; notice: string }) {
  const [creating, setCreating] = useState(false);
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      done(creating ? await api.signUp(email.trim(), name.trim(), password) : await api.signIn(email.trim(), password));
    } catch (err) {
      setError(err instanceof ApiError ? err.message : creating ? "Creating the account failed." : "Signing in failed.");
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} aria-label={creating ? "Create an account" : "Sign in"}>
        <h1>
          <img src="/icon.svg" alt="" width="28" height="28" /> BackOps
        </h1>
        <p class="muted">The production office's live view of your events.</p>
        {notice && (
          <p class="notice" data-testid="signin-notice">
            {notice}
          </p>
        )}
        {creating && (
          <label>
            Your name
            <input name="name" autoComplete="name" required maxLength={200} value={name} onInput={(e) => setName(e.currentTarget.value)} />
          </label>
        )}
        <label>
          Email
          <input name="email" type="email" autoComplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete={creating ? "new-password" : "current-password"}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {error && (
          <p class="error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "One moment…" : creating ? "Create the account" : "Sign in"}
        </button>
        <button
          type="button"
          class="link"
          data-testid="switch-signin"
          onClick={() => {
            setCreating(!creating);
            setError("");
          }}
        >
          {creating ? "I have an account: sign in" : "New here? Create an account"}
        </button>
      </form>
    </main>
  );
}

/** Until the account proves its email, a banner asks for the code mailed to it. */
function ProveEmail({ ctx, proven }: { ctx: Ctx; proven: () => void }) {
  const account = ctx.session.account;
  const [needed, setNeeded] = useState(account.email_proven === false);
  const [code, setCode] = useState("");
  const [message, setMessage] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    // A session kept from before the server said: ask.
    if (account.email_proven === undefined)
      api.me(ctx.session.token).then((a) => setNeeded(a.email_proven === false), () => undefined);
  }, []);
  if (!needed) return null;
  const done = () => {
    account.email_proven = true;
    localStorage.setItem(STORE_SESSION, JSON.stringify(ctx.session));
    setNeeded(false);
    proven();
  };
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      await api.proveEmail(ctx.session.token, code);
      done();
    } catch (err) {
      setMessage(err instanceof ApiError ? err.message : "Confirming failed; try again.");
    } finally {
      setBusy(false);
    }
  };
  const resend = async () => {
    try {
      const r = await api.sendCode(ctx.session.token);
      setMessage(`A new code is on its way to ${r.sent_to}.`);
    } catch (err) {
      if (err instanceof ApiError && err.code === "already_proven") return done();
      setMessage(err instanceof ApiError ? err.message : "Sending failed; try again.");
    }
  };
  return (
    <form class="prove" data-testid="prove-email" onSubmit={submit} aria-label="Confirm your email">
      <p>
        We sent a code to <strong>{account.email}</strong>. Enter it to confirm the address is yours: invitations,
        seats and roles given to it wait until you do.
      </p>
      <label>
        Code
        <input
          value={code}
          inputMode="numeric"
          autoComplete="one-time-code"
          onInput={(e) => setCode((e.target as HTMLInputElement).value)}
          required
        />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "One moment…" : "Confirm"}
      </button>
      <button type="button" class="link" onClick={resend}>
        Send a new code
      </button>
      {message && (
        <p class="muted" data-testid="prove-message" role="status">
          {message}
        </p>
      )}
    </form>
  );
}

function Picker({ ctx }: { ctx: Ctx }) {
  const [events, setEvents] = useState<EventView[] | null>(null);
  const [orgs, setOrgs] = useState<Org[]>([]);
  const [org, setOrg] = useState<string>("");
  const [error, setError] = useState("");
  useEffect(() => {
    const t = ctx.session.token;
    const load = () =>
      Promise.all([api.events(t), api.orgs(t)])
        .then(([e, o]) => {
          setEvents(e);
          setOrgs(o);
          setError("");
          const ids = new Set(e.map((x) => x.org));
          setOrg((cur) => (ids.has(cur) ? cur : [localStorage.getItem("backops.org") ?? "", e[0]?.org ?? ""].find((x) => ids.has(x)) ?? ""));
        })
        .catch((err) => setError(err instanceof ApiError ? err.message : "Loading your events failed."));
    load();
    // Invitations and seats given elsewhere show up without a reload.
    const timer = setInterval(load, 15_000);
    return () => clearInterval(timer);
  }, []);
  if (error && !events) return <p class="error page">{error}</p>;
  if (!events) return <p class="muted page">Loading your events…</p>;
  const name = (id: string) => orgs.find((o) => o.id === id)?.name ?? "Another organization";
  const orgIds = [...new Set(events.map((e) => e.org))];
  const shown = events.filter((e) => e.org === org);
  return (
    <main class="page picker">
      <h2>Your events</h2>
      {events.length === 0 ? (
        <p class="muted" data-testid="no-events">
          No events yet. An event you are invited to, or hold a seat in, shows here within seconds. (Creating
          events, buying Event Pro slots and inviting people is the API's: the README's five-minute tour walks through it.)
        </p>
      ) : (
        <>
          <label class="inline">
            Organization{" "}
            <select
              data-testid="org"
              value={org}
              onChange={(e) => {
                setOrg(e.currentTarget.value);
                localStorage.setItem("backops.org", e.currentTarget.value);
              }}
            >
              {orgIds.map((id) => (
                <option value={id} key={id}>
                  {name(id)}
                </option>
              ))}
            </select>
          </label>
          <ul class="events">
            {shown.map((e) => (
              <li key={e.id}>
                <a href={`#/e/${encodeURIComponent(e.id)}`} data-testid="event-link">
                  <strong>{e.name}</strong>
                  <span class="muted">
                    {e.access.seat ? "Event Pro seat: the whole event" : e.access.read_only ? "Your collaborator, read-only" : "Your collaborator"}
                  </span>
                </a>
              </li>
            ))}
          </ul>
        </>
      )}
    </main>
  );
}

render(<App />, document.getElementById("app")!);
