#!/bin/sh
# Build target/debian/proxkeep_<version>-1_<arch>.deb (README "Install"): the release binary, then what it
# generates from its own definitions (man pages, completions, the commented config template), then cargo-deb
# packs them as Cargo.toml's [package.metadata.deb] lists. Prints the .deb's path last.
# Needs cargo-deb (`cargo install --locked cargo-deb`) and dpkg-dev.
set -eu
cd "$(dirname "$0")/.."
target=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
cargo build --release --locked
bin=$target/release/proxkeep
gen=$target/release/packaging
rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions"
"$bin" manpages "$gen/man" >/dev/null
gzip -9n "$gen"/man/*.1
"$bin" completions bash >"$gen/completions/proxkeep"
"$bin" completions zsh >"$gen/completions/_proxkeep"
"$bin" completions fish >"$gen/completions/proxkeep.fish"
# The package serves every role: the template lists the categories of a PVE+PBS host (all of them).
"$bin" config init --role dual --out "$gen/proxkeep.toml" >/dev/null
cargo deb --no-build --locked
