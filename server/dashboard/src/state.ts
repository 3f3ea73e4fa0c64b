// What every part of the page shares: the sync session, a tick per rendered change, and
// messages for the person.

import { signal } from "@preact/signals";

import type { Session } from "./api";
import type { SignIn } from "./signin";
import type { SyncClient } from "./sync";

export interface Ctx {
  /** Changed in place when the token is renewed: read `session.token` when calling. */
  session: Session;
  signIn: SignIn;
  client: SyncClient;
  /** Listeners for access-relevant changes of an event (seats, memberships, narrowing). */
  onAccess: Set<(event: string) => void>;
}

/** Bumped (at most once a frame) whenever the sync session changed something. */
export const tick = signal(0);

/** Messages for the person: refused edits, mostly. */
export const toasts = signal<{ id: number; text: string }[]>([]);
let toastId = 0;

/** Shows `text` for 10 s (at most four at a time). */
export function toast(text: string): void {
  const id = ++toastId;
  toasts.value = [...toasts.value, { id, text }].slice(-4);
  setTimeout(() => (toasts.value = toasts.value.filter((t) => t.id !== id)), 10_000);
}
