// The page's incremental SHA-256 against Node's, on lengths around the block and padding
// boundaries, fed in uneven slices (as a file is read). Run by `npm test` (.ci/run).

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { build } from "esbuild";

const out = await build({ entryPoints: ["src/sha256.ts"], bundle: true, format: "esm", write: false, logLevel: "warning" });
const { Sha256 } = await import(`data:text/javascript;base64,${Buffer.from(out.outputFiles[0].contents).toString("base64")}`);

/** Deterministic bytes and slice sizes: the same run every time. */
function* xorshift(seed) {
  let x = seed;
  for (;;) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    yield x >>> 0;
  }
}

test("digests equal Node's for every length near a boundary, however the bytes are sliced", () => {
  const rand = xorshift(0x2545f491);
  const lengths = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 65_537, 1 << 20];
  for (const n of lengths) {
    const bytes = Uint8Array.from({ length: n }, () => rand.next().value & 0xff);
    const want = createHash("sha256").update(bytes).digest("hex");
    for (const most of [1, 7, 64, 1000, n || 1]) {
      const h = new Sha256();
      for (let at = 0; at < n; ) {
        const k = 1 + (rand.next().value % most);
        h.update(bytes.subarray(at, at + k));
        at += k;
      }
      assert.equal(h.hex(), want, `${n} bytes in slices of at most ${most}`);
    }
  }
});
