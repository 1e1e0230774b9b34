#!/usr/bin/env bash
# Builds each libFuzzer target with -sanitize=fuzzer,address and runs it for a bounded time on its committed
# seed corpus and dictionary. Any crash fails the run and leaves the input in Fuzz/crashes/<target>/.
#
#   scripts/fuzz.sh SECONDS [TARGET...]
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 0 [TARGET...]    (a number of executions instead of a time; `make fuzz-long`)
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

# A module is named as under Sources/ (SluiceWire, or one of its folders: SluiceRegistry/Configuration), or by its
# path from the top of the repository (Examples/FileCopy/Archive).
module_folder() {
    if [ -d "Sources/$1" ]; then echo "Sources/$1"; else echo "$1"; fi
}

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
        done < <(find "$(module_folder "$module")" -name '*.swift' | sort)
    done
    binary=".build/fuzz/$target"
    echo "== building $target"
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -use-ld=lld -module-name "${target}Fuzz" \
        "${sources[@]}" "$dir"/*.swift -I Sources/CJansson -ljansson -o "$binary"
    work="Fuzz/.work/$target"
    crashes="Fuzz/crashes/$target"
    mkdir -p "$work" "$crashes"
    if [ -n "${FUZZ_RUNS:-}" ]; then
        bound=(-runs="$FUZZ_RUNS")
        echo "== fuzzing $target for $FUZZ_RUNS executions"
    else
        bound=(-max_total_time="$seconds")
        echo "== fuzzing $target for ${seconds}s"
    fi
    rc=0
    started=$(date +%s)
    "$binary" -dict="$(ls "$dir"/*.dict)" "${bound[@]}" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$work" "$dir/corpus" >".build/fuzz/$target.log" 2>&1 || rc=$?
    grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)|ERROR|SUMMARY|Fatal error" \
        ".build/fuzz/$target.log" || true
    echo "   $target: $(grep -E '^stat::number_of_executed_units' ".build/fuzz/$target.log" | awk '{print $2}') executions in $(( $(date +%s) - started )) s, exit $rc"
    if [ "$rc" != 0 ]; then
        echo "error: $target crashed (exit $rc); the input is in $crashes/, the log in .build/fuzz/$target.log" >&2
        tail -40 ".build/fuzz/$target.log" >&2
        status=1
    fi
done
exit $status
