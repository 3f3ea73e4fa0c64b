// What several tabs of an event's page share: the page each tab is given, a clock that
// re-renders, and the collaborator picker of a new task or file.

import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";

import type { Ctx } from "../state";
import type { Access } from "../api";
import { str } from "../derive";
import type { WireRecord } from "../sync";

export interface Page {
  ctx: Ctx;
  event: string;
  access: Access;
  canEdit: boolean;
  names: Map<string, string>;
  view: (kind: string) => WireRecord[];
  collabName: (id: string) => string;
}

/** Re-renders every `ms` (times shown as "3 min ago", overdue gear, the chart's window). */
export function useNow(ms: number): Date {
  const [now, setNow] = useState(new Date());
  useEffect(() => {
    const t = setInterval(() => setNow(new Date()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/**
 * The collaborator a new task or file goes to: a seat holder chooses it (the select this
 * returns), a member's is their own (no select).
 */
export function useFolder(p: Page, testid: string, label: string): [string, JSX.Element | null] {
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
