// Uploading a file from the browser (docs/protocol.md "Files and photos"): hashed first,
// announced with its size and sha256, sent in 1 MiB chunks that resume from the server's
// offset after any cut, then made into the file record, which the feed brings back.

import { ApiError } from "./api";
import { Sha256 } from "./sha256";
import { uuid } from "./sync";

const CHUNK_BYTES = 1024 * 1024;
const HASH_SLICE_BYTES = 4 * 1024 * 1024;
/** Tries of one chunk after cuts, stalls and busy answers before giving up. */
const RETRIES_MAX = 8;

export interface Progress {
  phase: "hashing" | "uploading" | "adding" | "done" | "failed";
  done: number;
  size: number;
  error?: string;
}

async function hash(file: File, progress: (n: number) => void): Promise<string> {
  const h = new Sha256();
  for (let at = 0; at < file.size; at += HASH_SLICE_BYTES) {
    h.update(new Uint8Array(await file.slice(at, at + HASH_SLICE_BYTES).arrayBuffer()));
    progress(Math.min(file.size, at + HASH_SLICE_BYTES));
  }
  return h.hex();
}

async function failure(r: Response): Promise<ApiError> {
  const e = (await r.json().catch(() => ({}))) as { code?: string; message?: string };
  return new ApiError(r.status, e.code ?? "error", e.message ?? `The server answered ${r.status}.`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function uploadFile(
  token: string,
  event: string,
  collaborator: string | null,
  file: File,
  report: (p: Progress) => void,
): Promise<void> {
  const auth = { Authorization: `Bearer ${token}` };
  const size = file.size;
  report({ phase: "hashing", done: 0, size });
  const sha256 = await hash(file, (n) => report({ phase: "hashing", done: n, size }));
  const open = await fetch(`/v1/events/${encodeURIComponent(event)}/uploads`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify({
      id: uuid(),
      name: file.name,
      size,
      sha256,
      ...(collaborator ? { collaborator } : {}),
      ...(file.type ? { media_type: file.type } : {}),
    }),
  });
  if (!open.ok) throw await failure(open);
  const up = (await open.json()) as { id: string; file: string; offset: number };
  let offset = up.offset ?? 0;
  let tries = 0;
  while (offset < size) {
    report({ phase: "uploading", done: offset, size });
    let r: Response | null = null;
    try {
      r = await fetch(`/v1/uploads/${encodeURIComponent(up.id)}`, {
        method: "PATCH",
        headers: { ...auth, "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
        body: file.slice(offset, offset + CHUNK_BYTES),
      });
    } catch {
      r = null;
    }
    const held = Number(r?.headers.get("Upload-Offset"));
    if (r && (r.status === 204 || r.status === 200)) {
      offset = r.status === 200 ? size : held;
      tries = 0;
      continue;
    }
    if (r && r.status === 409 && Number.isFinite(held) && r.headers.has("Upload-Offset")) {
      offset = held;
      continue;
    }
    // A cut, a stall (408), a busy upload (409) or the server unwell (5xx): wait, ask
    // where it stands, and go on from there.
    const retry = !r || r.status === 408 || r.status === 409 || r.status >= 500;
    if (!retry || ++tries > RETRIES_MAX) throw r ? await failure(r) : new ApiError(0, "network", "The upload kept failing; try again.");
    await sleep(Math.min(10_000, 500 * 2 ** tries));
    const head = await fetch(`/v1/uploads/${encodeURIComponent(up.id)}`, { method: "HEAD", headers: auth }).catch(() => null);
    if (head?.ok) offset = Number(head.headers.get("Upload-Offset") ?? offset);
  }
  report({ phase: "adding", done: size, size });
  const add = await fetch(`/v1/events/${encodeURIComponent(event)}/files`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify({ id: up.file, name: file.name, ...(collaborator ? { collaborator } : {}) }),
  });
  if (!add.ok) {
    const e = await failure(add);
    // Added already (an earlier try whose answer was lost): it is there.
    if (e.code !== "file_exists") throw e;
  }
  report({ phase: "done", done: size, size });
}
