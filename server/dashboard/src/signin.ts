// The page's sign-in: kept in this browser, its access token renewed before it expires
// (and at once when it has expired), shared by every tab of the browser — one tab renews at
// a time (a Web Lock), and a tab that finds a newer token kept by another takes it instead
// of spending the refresh token again (which would end the sign-in as a replay).

import { ApiError, api, type Session } from "./api";

export const STORE_SESSION = "backops.session";
/** Renewed when this much of the token's life is left (a quarter, for short tokens). */
const AHEAD_MS = 120_000;
/** After a renewal that failed for the network, the next try. */
const RETRY_MS = 5_000;

export function storedSession(): Session | null {
  try {
    const v = localStorage.getItem(STORE_SESSION);
    return v ? (JSON.parse(v) as Session) : null;
  } catch {
    return null;
  }
}

export class SignIn {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  /**
   * `session` is changed in place on every renewal (every part of the page reads its token
   * from it); `renewed` hears the new token, `ended` why the sign-in is over.
   */
  constructor(
    readonly session: Session,
    private renewed: (token: string) => void,
    private ended: (why: string) => void,
  ) {
    localStorage.setItem(STORE_SESSION, JSON.stringify(session));
  }

  /** Whether the token is past (or near) its expiry. */
  due(): boolean {
    return Date.now() >= this.renewAt();
  }

  /** Starts renewing ahead of expiry. */
  start(): void {
    this.schedule(Math.max(0, this.renewAt() - Date.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Renews now (another tab's newer token counts); false when the sign-in is over. */
  async renew(): Promise<boolean> {
    const run = async (): Promise<boolean> => {
      const kept = storedSession();
      if (kept && kept.session === this.session.session && kept.expires_at > this.session.expires_at) {
        this.adopt(kept);
        return true;
      }
      if (!this.session.refresh_token) {
        this.end("Your sign-in has expired: sign in again.");
        return false;
      }
      try {
        const s = await api.renew(this.session.refresh_token);
        localStorage.setItem(STORE_SESSION, JSON.stringify(s));
        this.adopt(s);
        return true;
      } catch (e) {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
          this.end("This sign-in has ended: sign in again. Edits not yet sent are kept.");
          return false;
        }
        this.schedule(RETRY_MS);
        return Date.now() < this.session.expires_at * 1000;
      }
    };
    const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
    return locks ? locks.request("backops.renew", run) : run();
  }

  private renewAt(): number {
    const exp = this.session.expires_at * 1000;
    const life = exp - (this.session.received_at ?? exp);
    return exp - Math.min(AHEAD_MS, life / 4);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew(), ms);
  }

  private adopt(s: Session): void {
    Object.assign(this.session, s);
    this.renewed(s.token);
    this.start();
  }

  private end(why: string): void {
    this.stop();
    this.ended(why);
  }
}
