#!/usr/bin/env bash
# Sizes of the dashboard's files as the browser downloads them: raw, gzip and brotli per file
# (the .gz/.br files the release build writes with --precompress, which the server sends), and
# the total a signed-in user downloads on first load (the entry script, the WASM bundle and the
# stylesheet; lazily loaded parts are listed but not counted).
#   scripts/bundle-size.sh [--max-gz BYTES]   (after `cargo leptos build --release --precompress`)
# With --max-gz, exits 1 when the first-load gzip total is above BYTES.
set -euo pipefail
cd "$(dirname "$0")/.."
max=""
if [ "${1:-}" = "--max-gz" ]; then max=${2:?--max-gz needs a number of bytes}; fi
python3 - "$max" <<'EOF'
import gzip, os, sys
pkg = "target/site/pkg"
maximum = int(sys.argv[1]) if sys.argv[1] else None
# TypeScript declarations (clawloops.d.<hash>.ts) are build by-products browsers never fetch.
files = sorted(f for f in os.listdir(pkg) if not f.endswith((".gz", ".br", ".ts")))
def size(path):
    return os.path.getsize(path) if os.path.exists(path) else None
def first_load(name):
    # The entry script, the main bundle, the stylesheet and the loader of split-off parts;
    # the parts themselves (split_*, chunk_*) load when a page needs them, and the manifest is
    # read by the server only.
    return name.startswith("clawloops.") or name.startswith("__wasm_split.")
rows = []
for name in files:
    path = os.path.join(pkg, name)
    raw = size(path)
    gz = size(path + ".gz")
    if gz is None:
        with open(path, "rb") as f:
            gz = len(gzip.compress(f.read(), 9))
    rows.append((name, raw, gz, size(path + ".br") or 0, first_load(name)))
def line(name, raw, gz, br):
    print(f"{name:<56} {raw:>10,} {gz:>10,} {br:>10,}")
print(f"{'file':<56} {'raw':>10} {'gzip':>10} {'brotli':>10}")
first = [r for r in rows if r[4]]
lazy = sorted((r for r in rows if not r[4]), key=lambda r: -r[2])
for r in first:
    line(*r[:4])
total = {"raw": sum(r[1] for r in first), "gz": sum(r[2] for r in first), "br": sum(r[3] for r in first)}
line("first load, total", total["raw"], total["gz"], total["br"])
if lazy:
    print(f"\nloaded when a page needs them: {len(lazy)} files, the largest:")
    for r in lazy[:8]:
        line(*r[:4])
    line(f"all {len(lazy)}, total", sum(r[1] for r in lazy), sum(r[2] for r in lazy), sum(r[3] for r in lazy))
if maximum is not None and total["gz"] > maximum:
    print(f"error: the first load is {total['gz']:,} bytes gzipped, above the budget of {maximum:,}")
    sys.exit(1)
EOF
