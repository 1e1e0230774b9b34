import Foundation
import SluiceWire

/// Frame encode + decode of a call header of about 200 bytes, against Foundation's JSONEncoder/JSONDecoder
/// round-tripping the same fields through Codable (which, unlike jansson, accepts duplicate keys).
enum WireBenchmarks {
    struct CodableCall: Codable, Equatable {
        var type: String
        var id: UInt64
        var service: String
        var argument: String
        var target: String
        var requested_source: String?
    }

    static func callRequest() throws -> CallRequest {
        CallRequest(
            id: RequestID(rawValue: 4_815_162_342)!,
            call: try ServiceCall(
                parsing: "qubes.Filecopy+Documents.annual-report-2026.final.pdf+archive.partition-7.sluice"),
            target: try TargetName("@dispvm:work-dvm-template"),
            requestedSource: try DomainName("personal-remote")
        )
    }

    static func run() throws -> [Row] {
        let request = try callRequest()
        let encoder = FrameEncoder(direction: .clientToAgent)
        let decoder = FrameDecoder(direction: .clientToAgent)
        let frame = try encoder.encode(.call(request))
        let headerBytes = frame.count - WireLimits.prefixBytes
        let batch = 100_000

        var sink = 0
        let sluice = Harness.nanosecondsPerOperation(batch: batch) {
            for _ in 0..<batch {
                let bytes = try! encoder.encode(.call(request))
                if case .call(let decoded) = try! decoder.decode(datagram: bytes) { sink &+= Int(decoded.id.rawValue) }
            }
        }

        let codable = CodableCall(
            type: "call", id: request.id.rawValue, service: request.call.service.rawValue,
            argument: request.call.argument.rawValue, target: request.target.rawValue,
            requested_source: request.requestedSource?.rawValue
        )
        let jsonEncoder = JSONEncoder()
        let jsonDecoder = JSONDecoder()
        let baseline = Harness.nanosecondsPerOperation(batch: batch) {
            for _ in 0..<batch {
                let data = try! jsonEncoder.encode(codable)
                sink &+= Int(try! jsonDecoder.decode(CodableCall.self, from: data).id)
            }
        }
        precondition(sink != 0)
        return [
            Row(
                name: "frame encode+decode, \(headerBytes)-byte call header (ns/frame)",
                value: format(sluice),
                baseline: format(baseline),
                baselineName: "Foundation JSONEncoder+JSONDecoder (Codable)",
                verdict: "\(format(baseline / sluice, decimals: 2))x; strictness, not speed, is the goal"
            )
        ]
    }
}
