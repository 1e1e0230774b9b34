// sluice-bench: every figure Sluice promises, each next to a baseline measured in the same run.
// Build in release (`make bench`). docs/benchmarks.md explains each row.
#if canImport(Glibc)
    import Glibc
#endif

do {
    // `sluice-bench [GROUP...]` runs only the named groups (wire, vchan, policy, registry, calls, hostile); no argument
    // runs them all. `sluice-bench soak [CALLS]` runs the soak alone (`make soak`).
    let arguments = Array(CommandLine.arguments.dropFirst())
    if arguments.first == "soak" {
        printTable(try SoakBenchmark.run(calls: arguments.dropFirst().first.flatMap { Int($0) } ?? 100_000))
        exit(0)
    }
    let groups = Set(arguments)
    func wanted(_ group: String) -> Bool { groups.isEmpty || groups.contains(group) }
    var rows: [Row] = []
    if wanted("wire") { rows += try WireBenchmarks.run() }
    if wanted("vchan") { rows += try await VchanBenchmarks.run() }
    if wanted("policy") { rows += try PolicyBenchmarks.run() }
    if wanted("registry") { rows += try RegistryBenchmarks.run() }
    if wanted("calls") { rows += try CallBenchmarks.run() }
    if wanted("hostile") { rows += try HostileBenchmarks.run() }
    printTable(rows)
} catch {
    print("sluice-bench: \(error)")
    exit(1)
}
