#!/usr/bin/env bash
# Generates the crew app's bindings from the built mobile-bridge library:
#
#   mobile-bridge/bindings.sh OUT_DIR [--python]
#
# Kotlin lands in OUT_DIR/app/backops/sync/, Swift in OUT_DIR (BackOpsSync.swift, its C header
# and module map); --python adds mobile_bridge.py. They are generated from the debug library,
# built with the workspace's features, so after `cargo test --workspace` nothing new is built.
# The bindings depend only on the library's interface, not on how it was optimized: the same
# files load the library an app ships, built with
#
#   cargo build --profile mobile -p mobile-bridge
#
# (target/mobile/libmobile_bridge.so for Android, per ABI; libmobile_bridge.a for iOS).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: mobile-bridge/bindings.sh OUT_DIR [--python]}
shift
languages=(--language kotlin --language swift)
for arg in "$@"; do
    case "$arg" in
        --python) languages+=(--language python) ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

cargo build --workspace --locked
target=$(cargo metadata --format-version 1 --no-deps --locked | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
case "$(uname -s)" in
    Darwin) library=libmobile_bridge.dylib ;;
    *) library=libmobile_bridge.so ;;
esac
mkdir -p "$out"
"$target/debug/uniffi-bindgen" generate --no-format --metadata-no-deps --crate mobile_bridge \
    "${languages[@]}" --out-dir "$out" "$target/debug/$library"
echo "bindings written to $out"
