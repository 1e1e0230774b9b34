import SluiceSystem

#if canImport(Glibc)
    import Glibc
#endif

/// A tiny benchmark harness: run a body in batches, report the median time per operation over several
/// repetitions. Timings live here and only here, never in `swift test`.
enum Harness {
    static func now() -> UInt64 { MonotonicClock.nanoseconds }

    /// Median nanoseconds per operation of `body`, which performs `batch` operations per call.
    static func nanosecondsPerOperation(repetitions: Int = 7, batch: Int, _ body: () -> Void) -> Double {
        body()  // warm-up
        var samples: [Double] = []
        for _ in 0..<repetitions {
            let start = now()
            body()
            samples.append(Double(now() - start) / Double(batch))
        }
        samples.sort()
        return samples[samples.count / 2]
    }
}

/// One row of the printed table: a measurement and its baseline from the same run.
struct Row {
    var name: String
    var value: String
    var baseline: String
    var baselineName: String
    var verdict: String
}

func printTable(_ rows: [Row]) {
    let headers = ["benchmark", "sluice", "baseline (same run)", "baseline is", "goal / ratio"]
    var widths = headers.map(\.count)
    for row in rows {
        for (index, cell) in [row.name, row.value, row.baseline, row.baselineName, row.verdict].enumerated() {
            widths[index] = max(widths[index], cell.count)
        }
    }
    func line(_ cells: [String]) -> String {
        "| " + zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: " | ")
            + " |"
    }
    print(line(headers))
    print("|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|")
    for row in rows { print(line([row.name, row.value, row.baseline, row.baselineName, row.verdict])) }
}

func format(_ value: Double, decimals: Int = 0) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return decimals == 0 ? String(Int(rounded)) : String(rounded)
}
