#!/usr/bin/env bash
# Installs the Qdrant server v1.18.1 (the version compose.yaml pins) as .qdrant/bin/qdrant, for the
# tests that run against a real server. Two sources, checked in this order:
#   1. ../shared/bin/qdrant-v1.18.1-x86_64-linux.zst beside the project (built from the upstream
#      tag; see that folder's README), verified against the SHA-256 pinned below;
#   2. Qdrant's official release archive, verified against QDRANT_ARCHIVE_SHA256. Its checksum is
#      not pinned here: this project's machines cannot reach GitHub's release pages to read it,
#      and an unverified download is refused. Set it from the release page to use this path.
# Tests find the binary through QDRANT_BIN (scripts/test.sh sets it to .qdrant/bin/qdrant).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

version=v1.18.1
shared="${QDRANT_SHARED_BINARY:-$root/../shared/bin/qdrant-$version-x86_64-linux.zst}"
shared_sha256=26f887aeef43a68651ea2f938ced4780913ba628d095ad791b59f546c8817d34
binary_sha256=a629ceaa66895d202fb8e217da939619fcf4254abefc8368f8bf350340f6668a
archive_url="https://github.com/qdrant/qdrant/releases/download/$version/qdrant-x86_64-unknown-linux-gnu.tar.gz"
target=.qdrant/bin/qdrant

if [ -x "$target" ] && [ "$(cat .qdrant/bin/.version 2>/dev/null)" = "$version" ]; then
    exit 0
fi
mkdir -p .qdrant/bin
if [ -f "$shared" ]; then
    echo "setup: installing the Qdrant server $version from $shared"
    command -v zstd >/dev/null || { echo "setup: zstd is needed (apt-get install zstd)" >&2; exit 1; }
    echo "$shared_sha256  $shared" | sha256sum --check --quiet
    zstd -q -d -f "$shared" -o "$target.tmp"
    echo "$binary_sha256  $target.tmp" | sha256sum --check --quiet
else
    if [ -z "${QDRANT_ARCHIVE_SHA256:-}" ]; then
        echo "setup: no Qdrant server binary at $shared, and QDRANT_ARCHIVE_SHA256 is not set:" >&2
        echo "       set it to the SHA-256 of $archive_url (from Qdrant's release page) to download it" >&2
        exit 1
    fi
    echo "setup: downloading the Qdrant server $version"
    archive="$(mktemp)"
    curl --fail --location --silent --show-error --output "$archive" "$archive_url"
    echo "$QDRANT_ARCHIVE_SHA256  $archive" | sha256sum --check --quiet
    tar -xzf "$archive" -C .qdrant/bin qdrant
    mv .qdrant/bin/qdrant "$target.tmp"
    rm -f "$archive"
fi
chmod +x "$target.tmp"
mv "$target.tmp" "$target"
echo "$version" > .qdrant/bin/.version
