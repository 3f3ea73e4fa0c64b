// The HTTP API calls the dashboard makes (docs/api.md), each answering data or throwing an
// ApiError with the server's code and sentence.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Account {
  id: string;
  email: string;
  name: string;
  /** Proved by a code mailed to the address; grants to it wait until then. */
  email_proven?: boolean;
}

export interface Session {
  /** The access token (minutes), renewed with `refresh_token` before it expires. */
  token: string;
  expires_at: number;
  /** Spent at each renewal, which gives a new one. */
  refresh_token?: string;
  /** The sign-in's id (this browser's entry in the list of sign-ins). */
  session?: string;
  account: Account;
  /** When this page received the token (ms): renewals are timed from it. */
  received_at?: number;
}

export interface Access {
  seat: boolean;
  org_role: string | null;
  collaborator: string | null;
  read_only: boolean;
}

export interface EventView {
  id: string;
  org: string;
  name: string;
  access: Access;
}

export interface Org {
  id: string;
  name: string;
}

export interface Person {
  id: string;
  name: string;
}

export interface DeviceSeen {
  account: string;
  device: string;
  /** Following the event now, through any server. */
  connected: boolean;
  sessions: number;
  cursor: number;
  first_seen: string;
  last_seen: string;
}

export interface Links {
  content: string;
  thumbnails: Record<string, string>;
  expires_at: number;
}

const BASE = "/v1";

/** The path of the next page a list's answer names (`Link: <…>; rel="next"`), if any. */
function nextPage(resp: Response): string | null {
  const m = /^<([^>]+)>;\s*rel="next"$/.exec(resp.headers.get("Link") ?? "");
  return m && m[1].startsWith(BASE + "/") ? m[1].slice(BASE.length) : null;
}

/** Every row of a paged list: its pages one after another, up to `max` rows. */
async function all<T>(path: string, token: string, max = 100_000): Promise<T[]> {
  const rows: T[] = [];
  let next: string | null = path;
  while (next !== null && rows.length < max) {
    let link: string | null = null;
    rows.push(...(await call<T[]>("GET", next, token, undefined, (r) => (link = nextPage(r)))));
    next = link;
  }
  return rows;
}

async function call<T>(
  method: string,
  path: string,
  token: string | null,
  body?: unknown,
  seen?: (resp: Response) => void,
): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check the connection and try again.");
  }
  seen?.(resp);
  if (resp.status === 204) return undefined as T;
  let data: unknown = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const e = (data ?? {}) as { code?: string; message?: string };
    throw new ApiError(resp.status, e.code ?? "error", e.message ?? `The server answered ${resp.status}.`);
  }
  return data as T;
}

/** How this browser names itself in a person's list of sign-ins. */
function deviceName(): string {
  const ua = typeof navigator === "undefined" ? "" : navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom/.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "a browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return `Dashboard, ${browser}${os ? ` on ${os}` : ""}`;
}

const received = (s: Session): Session => ({ ...s, received_at: Date.now() });

export const api = {
  signIn: (email: string, password: string) =>
    call<Session>("POST", "/sessions", null, { email, password, device_name: deviceName() }).then(received),
  signUp: (email: string, name: string, password: string) =>
    call<Session>("POST", "/accounts", null, { email, name, password, device_name: deviceName() }).then(received),
  renew: (refresh: string) => call<Session>("POST", "/sessions/refresh", null, { refresh_token: refresh }).then(received),
  signOut: (token: string) => call<void>("DELETE", "/me/sessions/current", token),
  me: (token: string) => call<Account>("GET", "/me", token),
  sendCode: (token: string) => call<{ sent_to: string; expires_at: string }>("POST", "/me/email/code", token, {}),
  proveEmail: (token: string, code: string) => call<Account>("POST", "/me/email/proof", token, { code }),
  orgs: (token: string) => call<Org[]>("GET", "/orgs", token),
  events: (token: string) => call<EventView[]>("GET", "/events", token),
  event: (token: string, event: string) => call<EventView>("GET", `/events/${encodeURIComponent(event)}`, token),
  people: (token: string, event: string) => call<Person[]>("GET", `/events/${encodeURIComponent(event)}/people`, token),
  devices: (token: string, event: string) => all<DeviceSeen>(`/events/${encodeURIComponent(event)}/devices`, token),
  links: (token: string, event: string, file: string) =>
    call<Links>("POST", `/events/${encodeURIComponent(event)}/files/${encodeURIComponent(file)}/links`, token, {}),
};
