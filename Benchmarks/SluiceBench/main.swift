// sluice-bench: every figure Sluice promises, each next to a baseline measured in the same run.
// Build in release (`make bench`). docs/benchmarks.md explains each row.
#if canImport(Glibc)
    import Glibc
#endif

do {
    var rows: [Row] = []
    rows += try WireBenchmarks.run()
    rows += try await VchanBenchmarks.run()
    printTable(rows)
} catch {
    print("sluice-bench: \(error)")
    exit(1)
}
