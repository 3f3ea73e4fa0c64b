// The Files tab: uploads, and the files with thumbnails and downloads through short-lived
// links, renewed before they lapse.

import { signal } from "@preact/signals";
import { useEffect, useState } from "preact/hooks";

import { toast } from "../state";
import { ApiError, type Links, api } from "../api";
import { bytes, str } from "../derive";
import type { WireRecord } from "../sync";
import { type Progress, uploadFile } from "../upload";
import { type Page, useFolder } from "./common";

/** Short-lived links (5 min) of a file, asked for when shown and renewed before they lapse. */
const linkCache = new Map<string, Links>();

function useLinks(p: Page, file: WireRecord): Links | null {
  const k = `${p.event}/${file.id}/${str(file.data, "content_hash")}`;
  const [links, setLinks] = useState<Links | null>(() => fresh(linkCache.get(k)));
  useEffect(() => {
    let stop = false;
    const get = () =>
      api
        .links(p.ctx.session.token, p.event, file.id)
        .then((l) => {
          linkCache.set(k, l);
          if (!stop) setLinks(l);
        })
        .catch(() => {});
    if (!fresh(linkCache.get(k))) get();
    const t = setInterval(() => fresh(linkCache.get(k)) || get(), 30_000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [k]);
  return links;
}

function fresh(l: Links | undefined): Links | null {
  return l && l.expires_at * 1000 > Date.now() + 60_000 ? l : null;
}

export function Files({ p }: { p: Page }) {
  const files = p.view("file_meta").sort((a, b) => str(b.data, "created_at").localeCompare(str(a.data, "created_at")));
  return (
    <section aria-label="Files">
      {p.canEdit && <Uploader p={p} />}
      {!files.length && <p class="muted">No files yet. Photos taken on crew phones appear here as they upload.</p>}
      <div class="files">
        {files.map((f) => (
          <FileCard key={f.id} p={p} f={f} />
        ))}
      </div>
    </section>
  );
}

/** Uploads under way or finished in this page, by a key of their own. */
const uploads = signal<{ key: number; name: string; progress: Progress }[]>([]);
let uploadKey = 0;

function Uploader({ p }: { p: Page }) {
  const [target, folder] = useFolder(p, "upload-folder", "Folder");
  const start = (list: FileList | null) => {
    for (const file of Array.from(list ?? [])) {
      const key = ++uploadKey;
      const set = (progress: Progress) =>
        (uploads.value = uploads.value.map((u) => (u.key === key ? { ...u, progress } : u)));
      uploads.value = [...uploads.value, { key, name: file.name, progress: { phase: "hashing" as const, done: 0, size: file.size } }].slice(-20);
      uploadFile(p.ctx.session.token, p.event, target || null, file, set).catch((e) => {
        const error = e instanceof ApiError ? e.message : "The upload failed.";
        set({ phase: "failed", done: 0, size: file.size, error });
        toast(`Uploading ${file.name} failed: ${error}`);
      });
    }
  };
  return (
    <div class="uploader">
      <label class="button">
        Upload files
        <input type="file" multiple data-testid="upload-input" onChange={(e) => start(e.currentTarget.files)} />
      </label>
      {folder}
      <ul class="list">
        {uploads.value.map((u) => (
          <li key={u.key} data-testid="upload" data-phase={u.progress.phase}>
            <span class="what">{u.name}</span>
            <span class="muted">
              {u.progress.phase === "failed"
                ? u.progress.error
                : u.progress.phase === "done"
                  ? "uploaded"
                  : `${u.progress.phase} ${u.progress.size ? Math.floor((100 * u.progress.done) / u.progress.size) : 100}%`}
            </span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function FileCard({ p, f }: { p: Page; f: WireRecord }) {
  const links = useLinks(p, f);
  const d = f.data;
  const thumb = links?.thumbnails["256"];
  const withheld = d.original_withheld === true && str(d, "uploaded_by") !== p.ctx.session.account.id;
  return (
    <figure class="file" data-testid="file" data-name={str(d, "name")}>
      <div class="thumb">{thumb ? <img src={thumb} alt={str(d, "name")} loading="lazy" data-testid="thumbnail" /> : <span class="ext">{ext(str(d, "name"))}</span>}</div>
      <figcaption>
        <strong title={str(d, "name")}>{str(d, "name")}</strong>
        <span class="muted">
          {bytes(Number(d.size ?? 0))}
          {p.access.seat && ` · ${p.collabName(str(d, "collaborator"))}`} · {p.names.get(str(d, "uploaded_by")) ?? "someone"}
        </span>
        {str(d, "preview_note") && <span class="muted note">{str(d, "preview_note")}</span>}
        {withheld ? (
          <span class="muted note">Original withheld: it may carry location data that could not be removed.</span>
        ) : (
          links && (
            <a href={links.content} download={str(d, "name")} rel="noopener">
              Download
            </a>
          )
        )}
      </figcaption>
    </figure>
  );
}

const ext = (name: string) => (name.includes(".") ? name.split(".").pop()!.slice(0, 5).toUpperCase() : "FILE");
