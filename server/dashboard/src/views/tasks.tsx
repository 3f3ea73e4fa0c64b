// The Tasks tab: the board by status; create a task, edit its title, move it.

import { useRef, useState } from "preact/hooks";

import { TASK_COLUMNS, TASK_STATUSES, board, localDay, str } from "../derive";
import { type SyncClient, type WireRecord, uuid } from "../sync";
import { type Page, useFolder } from "./common";

function pendingIds(client: SyncClient, event: string): Set<string> {
  return new Set(client.pending.get(event)?.map((m) => m.record ?? "") ?? []);
}

export function Board({ p }: { p: Page }) {
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
