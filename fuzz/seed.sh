#!/usr/bin/env bash
# Copies the small documents of the shared OpenAPI corpus (under 64 kB: the fuzzer mutates small
# inputs faster) into fuzz/corpus/ingest/ as seeds. Run from anywhere; the corpus path can be
# given as the first argument.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
corpus="${1:-$here/../../shared/openapi-corpus}"
mkdir -p "$here/corpus/ingest"
find "$corpus" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' -o -name '*.json' \) -size -64k \
    -exec cp {} "$here/corpus/ingest/" \;
ls "$here/corpus/ingest" | wc -l
