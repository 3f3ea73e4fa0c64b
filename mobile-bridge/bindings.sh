#!/usr/bin/env bash
# Generates the crew app's bindings from the built mobile-bridge library:
#
#   mobile-bridge/bindings.sh OUT_DIR [--release] [--python]
#
# Kotlin lands in OUT_DIR/app/backops/sync/, Swift in OUT_DIR (BackOpsSync.swift, its C header
# and module map). The library is built first: in debug with the workspace's features, so
# after `cargo test --workspace` nothing new is built; with --release on its own (the library
# an app ships, see BENCHMARKS.md for its size). Link the app against
# target/<profile>/libmobile_bridge.so (Android, per ABI) or libmobile_bridge.a (iOS).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: mobile-bridge/bindings.sh OUT_DIR [--release] [--python]}
shift
profile=debug
build=(--workspace)
languages=(--language kotlin --language swift)
for arg in "$@"; do
    case "$arg" in
        --release) profile=release; build=(--release -p mobile-bridge -p uniffi-bindgen) ;;
        --python) languages+=(--language python) ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

cargo build --locked "${build[@]}"
target=$(cargo metadata --format-version 1 --no-deps --locked | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
case "$(uname -s)" in
    Darwin) library=libmobile_bridge.dylib ;;
    *) library=libmobile_bridge.so ;;
esac
mkdir -p "$out"
"$target/$profile/uniffi-bindgen" generate --no-format --metadata-no-deps --crate mobile_bridge \
    "${languages[@]}" --out-dir "$out" "$target/$profile/$library"
echo "bindings for $(basename "$library") ($profile) written to $out"
