#!/usr/bin/env bash
# Builds each libFuzzer target with -sanitize=fuzzer,address and runs it for a bounded time on its committed
# seed corpus and dictionary. Any crash fails the run and leaves the input in Fuzz/crashes/<target>/.
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#
# A target is a folder Fuzz/<Target>/ holding <Target>Fuzz.swift, corpus/ and a .dict file, plus the list of
# modules whose sources it is compiled with (Fuzz/<Target>/modules).
set -euo pipefail
seconds="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for dir in Fuzz/*/; do
        [ -f "$dir/modules" ] && targets+=("$(basename "$dir")")
    done
fi

mkdir -p .build/fuzz Fuzz/.work Fuzz/crashes
status=0
for target in "${targets[@]}"; do
    dir="Fuzz/$target"
    # The listed modules are compiled as one module: their imports of each other are dropped (a copy of each source
    # with those lines removed), everything else is compiled as it is.
    modules=$(cat "$dir/modules")
    merged=".build/fuzz/src/$target"
    rm -rf "$merged"
    mkdir -p "$merged"
    pattern="^[[:space:]]*(@_exported[[:space:]]+)?((public|internal|package)[[:space:]]+)?import[[:space:]]+($(echo $modules | tr ' ' '|'))[[:space:]]*$"
    sources=()
    for module in $modules; do
        while IFS= read -r file; do
            copy="$merged/$(echo "$file" | tr '/' '_')"
            grep -Ev "$pattern" "$file" > "$copy" || true
            sources+=("$copy")
        done < <(find "Sources/$module" -name '*.swift' | sort)
    done
    binary=".build/fuzz/$target"
    echo "== building $target"
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld -module-name "${target}Fuzz" \
        "${sources[@]}" "$dir"/*.swift -I Sources/CJansson -ljansson -o "$binary"
    work="Fuzz/.work/$target"
    crashes="Fuzz/crashes/$target"
    mkdir -p "$work" "$crashes"
    echo "== fuzzing $target for ${seconds}s"
    rc=0
    "$binary" -dict="$(ls "$dir"/*.dict)" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$work" "$dir/corpus" >".build/fuzz/$target.log" 2>&1 || rc=$?
    grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)|ERROR|SUMMARY|Fatal error" \
        ".build/fuzz/$target.log" || true
    if [ "$rc" != 0 ]; then
        echo "error: $target crashed (exit $rc); the input is in $crashes/, the log in .build/fuzz/$target.log" >&2
        tail -40 ".build/fuzz/$target.log" >&2
        status=1
    fi
done
exit $status
