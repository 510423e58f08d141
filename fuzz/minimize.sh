#!/usr/bin/env bash
# Rebuilds the committed corpus of TARGET (default: every target) from fuzz/corpus-work/<target>
# (long runs), fuzz/corpus/<target> and fuzz/seeds/<target>: `cargo fuzz cmin` keeps the
# smallest set of inputs with the same coverage. Inputs over 1 MiB are kept only when they are
# seeds (disk formats with 1 MiB alignment need them), and past 1 MiB per target only the
# seeds and the smallest inputs are kept, so the committed corpus stays a few MB.
set -euo pipefail
cd "$(dirname "$0")"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
for t in "${targets[@]}"; do
    work="$(mktemp -d)"
    for d in corpus-work seeds corpus; do
        [ -d "$d/$t" ] || continue
        find "$d/$t" -type f -size -1025k -exec cp -n {} "$work/" \;
    done
    [ -d "seeds/$t" ] && cp -n seeds/"$t"/* "$work/"
    RUSTC_BOOTSTRAP=1 cargo fuzz cmin -O "$t" "$work" -- -rss_limit_mb=2048 -timeout=10 >/dev/null 2>&1
    rm -rf "corpus/$t"
    mkdir -p "corpus/$t"
    [ -d "seeds/$t" ] && cp seeds/"$t"/* "corpus/$t/"
    budget=$((1024 * 1024))
    while read -r size f; do
        [ -e "corpus/$t/$(basename "$f")" ] && continue
        budget=$((budget - size))
        [ "$budget" -ge 0 ] || break
        cp "$f" "corpus/$t/"
    done < <(find "$work" -type f -printf '%s %p\n' | sort -n)
    rm -rf "$work"
    echo "$t: $(ls "corpus/$t" | wc -l) inputs, $(du -sh --apparent-size "corpus/$t" | cut -f1)"
done
