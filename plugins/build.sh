#!/usr/bin/env bash
# Builds the example plugins from source into plugins/target/wasm32-unknown-unknown/release/.
# Rust: rustup's wasm32 target when it can be installed, else Debian's
# rustc 1.63 with its packaged wasm32 standard library.
# C: Debian's clang and lld (installed if missing).
set -euo pipefail
cd "$(dirname "$0")"
if rustup target add wasm32-unknown-unknown >/dev/null 2>&1 \
    || rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    build() { cargo build --locked --release --target wasm32-unknown-unknown --target-dir target "$@"; }
else
    echo "rustup's wasm32 target is unavailable; using Debian's rustc and libstd-rust-dev-wasm32"
    if ! dpkg -s libstd-rust-dev-wasm32 >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc cargo libstd-rust-dev-wasm32 >/dev/null
    fi
    build() { /usr/bin/cargo build --release --target wasm32-unknown-unknown --target-dir target "$@"; }
fi
out=target/wasm32-unknown-unknown/release
# The Fahrenheit example once more as ABI version 1 (JSON), for the plugin
# benchmark and the tests that keep version 1 working; the workspace build
# after it puts back the version-2 module under the usual name.
build -p fahrenheit-to-celsius --features abi-v1
cp "$out/fahrenheit_to_celsius.wasm" "$out/fahrenheit_to_celsius_v1.wasm"
build

if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null; then
    echo "installing clang and lld for the C example"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang lld >/dev/null
fi
clang --target=wasm32 -O2 -nostdlib -Wall -Wextra -Werror -Wl,--no-entry -Wl,--strip-all \
    -o "$out/drop_debug_c.wasm" examples/drop-debug-c/drop_debug.c

ls -1 "$out"/*.wasm
