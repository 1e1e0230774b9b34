import Foundation
import Logging
import SluiceSystem
import SluiceTesting
import SluiceVchan
import SluiceWire

/// A broker with four domains (0, 1, 2, and 3, which only uid 4242 may use), the test process acting as domain 0,
/// and helpers to run `sluice-vchan-probe` as another domain.
final class VchanHarness {
    let directory: TemporaryDirectory
    let broker: LocalVchanBroker
    let rendezvous: VchanRendezvous

    static let restrictedDomain = DomainID(rawValue: 3)!
    static let restrictedUID: UInt32 = 4_242
    /// A uid no domain of the harness has.
    static let strangerUID: UInt32 = 4_243

    init() throws {
        directory = try TemporaryDirectory(prefix: "sluice-vchan")
        chmod(directory.path, 0o755)
        var logger = Logger(label: "test.broker")
        logger.logLevel = .critical
        broker = try LocalVchanBroker(
            directory: directory.path,
            domains: [
                .init(id: .admin), .init(id: DomainID(rawValue: 1)!), .init(id: DomainID(rawValue: 2)!),
                .init(id: Self.restrictedDomain, uid: Self.restrictedUID),
            ],
            // Room for the test that offers 1 000 vchans at once from one domain.
            limits: LocalVchanBroker.Limits(registrationsPerDomain: 2_048, registrationsTotal: 4_096),
            logger: logger
        )
        rendezvous = try VchanRendezvous(path: broker.socketPath(for: .admin))
    }

    deinit {
        broker.stop()
        directory.remove()
    }

    func server(peer: UInt16 = 1, port: UInt16, read: Int = 65_536, write: Int = 65_536, initialIndex: UInt32 = 0)
        throws -> LocalVchan
    {
        try LocalVchan.server(
            rendezvous: rendezvous, peer: DomainID(rawValue: peer)!, port: VchanPort(rawValue: port)!,
            readMinimum: read, writeMinimum: write, initialIndex: initialIndex
        )
    }

    /// Starts the probe as domain `domain` (through that domain's rendezvous socket), optionally under another uid.
    func probe(_ arguments: [String], domain: UInt16 = 1, uid: UInt32? = nil) throws -> Probe {
        let output = try SluiceSystem.Pipe()
        var command =
            [BuiltProducts.path(of: "sluice-vchan-probe")] + arguments
            + ["--rendezvous", broker.socketPath(for: DomainID(rawValue: domain)!)]
        if let uid {
            command = ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups"] + command
        }
        let child = try ChildProcess.spawn(
            path: command[0], arguments: command, environment: [],
            descriptors: [(output.writeEnd, 1), (output.writeEnd, 2)]
        )
        output.writeEnd.close()
        return Probe(child: child, output: output.readEnd)
    }
}

struct Probe {
    let child: ChildProcess
    let output: FileDescriptor

    /// Waits for the probe and returns its exit status and what it printed.
    func finish() throws -> (status: Termination, output: String) {
        let text = String(decoding: try output.readToEnd(), as: UTF8.self)
        output.close()
        return (try child.wait(), text)
    }
}

/// Waits up to `seconds` for a server's client to connect.
func waitForClient(_ vchan: any Vchan, seconds: Int = 10) throws {
    let deadline = monotonicMilliseconds() + seconds * 1_000
    while vchan.state == .waitingForClient {
        guard monotonicMilliseconds() < deadline else { throw VchanScenario.Failure("no client connected") }
        _ = try Readiness.wait(try vchan.readinessDescriptor, timeoutMilliseconds: 50)
        vchan.consumeEvents()
    }
}
