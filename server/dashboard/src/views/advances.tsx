// The Advances tab: those awaiting review first, then the rest. A member answers an
// advance, the team approves it.

import { useState } from "preact/hooks";

import { ADVANCE_STATUS, str } from "../derive";
import type { WireRecord } from "../sync";
import type { Page } from "./common";

export function Advances({ p }: { p: Page }) {
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

export function AdvanceRow({ p, a }: { p: Page; a: WireRecord }) {
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
