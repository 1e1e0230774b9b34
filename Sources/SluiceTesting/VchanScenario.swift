import SluiceSystem
public import SluiceVchan
import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// The vchan behaviour suite, written once over the `Vchan` protocol. Each scenario has a server side and a
/// client side; a test runs one side in its own process and the other in `sluice-vchan-probe`, on the local
/// backend here and on the xen backend between dom0 and a domU. Each side returns a summary or throws.
public enum VchanScenario: String, CaseIterable, Sendable {
    /// Datagrams of odd sizes, echoed, until the rings have wrapped many times.
    case datagramEcho = "datagram-echo"
    /// 4 MiB streamed through and echoed back, compared byte for byte.
    case streamEcho = "stream-echo"
    /// The server fills the ring while the client sleeps: the writer must block, then finish when the reader drains.
    case fullRing = "full-ring"
    /// Datagrams larger than the rings fail at once, in blocking and non-blocking mode.
    case tooLarge = "too-large"
    /// The client queues data and closes; the server still reads all of it, then sees the end.
    case closeWithData = "close-with-data"
    /// The client connects and waits to be killed.
    case hold
    /// The client sends 103 frames, then one with a duplicate key: the server gets every good frame, then the
    /// typed error.
    case frames

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public func runServer(_ vchan: any Vchan) throws -> String {
        switch self {
        case .datagramEcho: return try Self.datagramEchoServer(vchan)
        case .streamEcho: return try Self.streamEchoServer(vchan)
        case .fullRing: return try Self.fullRingServer(vchan)
        case .tooLarge: return try Self.tooLargeServer(vchan)
        case .closeWithData: return try Self.closeWithDataServer(vchan)
        case .hold: return try Self.holdServer(vchan)
        case .frames: return try Self.framesServer(vchan)
        }
    }

    public func runClient(_ vchan: any Vchan) throws -> String {
        switch self {
        case .datagramEcho:
            var echoed = 0
            while true {
                guard let header = try vchan.receive(count: 4) else { continue }
                let length = Int(Self.uint32(header))
                if length == 0 { return "echoed \(echoed) datagrams" }
                guard let body = try vchan.receive(count: length) else { continue }
                try vchan.send(header + body)
                echoed += 1
            }
        case .streamEcho:
            var total = 0
            while true {
                let chunk: [UInt8]
                do {
                    chunk = try vchan.read(maxCount: 65_536)
                } catch {
                    guard error.code == .channelClosed else { throw error }
                    return "echoed \(total) bytes"
                }
                try vchan.write(chunk)
                total += chunk.count
            }
        case .fullRing:
            guard let header = try vchan.receive(count: 8) else { throw Failure("no length") }
            let total = Int(Self.uint64(header))
            usleep(300_000)
            var checksum = Checksum()
            var received = 0
            while received < total {
                let chunk = try vchan.read(maxCount: min(65_536, total - received))
                checksum.add(chunk)
                received += chunk.count
            }
            try vchan.send(Self.bytes(checksum.value))
            return "read \(received) bytes after a 300 ms pause"
        case .tooLarge:
            _ = try vchan.receive(count: 1)
            return "waited for the server's verdict"
        case .closeWithData:
            for index in 0..<50 {
                try vchan.send([UInt8](repeating: UInt8(index), count: 100))
            }
            vchan.close()
            return "queued 50 datagrams and closed"
        case .hold:
            _ = try vchan.receive(count: 1)
            return "released"
        case .frames:
            for frame in try Self.goodFrames() { try vchan.send(frame) }
            try vchan.send(Self.duplicateKeyFrame)
            _ = try? vchan.receive(count: 1)
            return "sent 103 frames and a hostile one"
        }
    }

    // MARK: Server sides

    static let oddSizes = [1, 3, 7, 13, 97, 251, 509, 1_021, 2_039, 4_093, 8_191, 16_381, 65_521]

    static func datagramEchoServer(_ vchan: any Vchan) throws -> String {
        let bound = min(vchan.maxDatagramBytes, vchan.receiveRingBytes) - 4
        let sizes = oddSizes.filter { $0 <= bound } + [bound]
        let ring = max(vchan.maxDatagramBytes, vchan.receiveRingBytes)
        var total = 0
        var count = 0
        var generator = Pattern(seed: 7)
        while total < 8 * ring || count < 200 {
            let size = sizes[count % sizes.count]
            let payload = generator.bytes(size)
            try vchan.send(bytes(UInt32(size)) + payload)
            guard let header = try vchan.receive(count: 4), Int(uint32(header)) == size,
                let echo = try vchan.receive(count: size)
            else { throw Failure("datagram \(count) of \(size) bytes came back short") }
            guard echo == payload else { throw Failure("datagram \(count) of \(size) bytes came back changed") }
            total += size
            count += 1
        }
        try vchan.send(bytes(UInt32(0)))
        return "\(count) datagrams, \(total) bytes, rings \(vchan.maxDatagramBytes)/\(vchan.receiveRingBytes)"
    }

    static func streamEchoServer(_ vchan: any Vchan) throws -> String {
        var generator = Pattern(seed: 11)
        let data = generator.bytes(4 << 20)
        var sent = 0
        var received: [UInt8] = []
        received.reserveCapacity(data.count)
        vchan.isBlocking = false
        defer { vchan.isBlocking = true }
        var chunk = 1
        while received.count < data.count {
            var progressed = false
            if sent < data.count {
                chunk = chunk % 9_973 + 1_237
                let end = min(data.count, sent + chunk)
                let written = try vchan.write(Array(data[sent..<end]))
                sent += written
                progressed = progressed || written > 0
            }
            let back = try vchan.read(maxCount: 65_536)
            received += back
            progressed = progressed || !back.isEmpty
            if !progressed { try vchan.wait() }
        }
        guard received == data else { throw Failure("the echoed stream differs") }
        vchan.close()
        return "streamed and compared \(data.count) bytes"
    }

    static func fullRingServer(_ vchan: any Vchan) throws -> String {
        let total = 8 * vchan.maxDatagramBytes
        var generator = Pattern(seed: 3)
        let data = generator.bytes(total)
        try vchan.send(bytes(UInt64(total)))
        let start = monotonicMilliseconds()
        let written = try vchan.write(data)
        let blocked = monotonicMilliseconds() - start
        guard written == total else { throw Failure("wrote \(written) of \(total) bytes") }
        guard blocked >= 200 else {
            throw Failure("the writer finished in \(blocked) ms: it never waited for the reader")
        }
        guard let reply = try vchan.receive(count: 8) else { throw Failure("no checksum") }
        var checksum = Checksum()
        checksum.add(data)
        guard uint64(reply) == checksum.value else { throw Failure("the reader's checksum differs") }
        return "the writer blocked \(blocked) ms on a full ring, then delivered \(total) bytes intact"
    }

    static func tooLargeServer(_ vchan: any Vchan) throws -> String {
        var outcomes: [String] = []
        for blocking in [true, false] {
            vchan.isBlocking = blocking
            do {
                try vchan.send([UInt8](repeating: 0, count: vchan.maxDatagramBytes + 1))
                throw Failure("a datagram larger than the ring was accepted (blocking \(blocking))")
            } catch let error as SluiceError where error.code == .datagramTooLarge {
                outcomes.append("send")
            }
            do {
                _ = try vchan.receive(count: vchan.receiveRingBytes + 1)
                throw Failure("a receive larger than the ring was accepted (blocking \(blocking))")
            } catch let error as SluiceError where error.code == .datagramTooLarge {
                outcomes.append("receive")
            }
        }
        vchan.isBlocking = true
        try vchan.send([1])
        return "refused \(outcomes.count) oversized datagrams without waiting"
    }

    static func closeWithDataServer(_ vchan: any Vchan) throws -> String {
        let deadline = monotonicMilliseconds() + 10_000
        while vchan.state != .closed {
            guard monotonicMilliseconds() < deadline else { throw Failure("the client never closed") }
            usleep(5_000)
        }
        for index in 0..<50 {
            guard let datagram = try vchan.receive(count: 100), datagram.allSatisfy({ $0 == UInt8(index) }) else {
                throw Failure("datagram \(index) was lost after the peer closed")
            }
        }
        do {
            _ = try vchan.receive(count: 1)
            throw Failure("a receive after the queued data did not report the close")
        } catch let error as SluiceError where error.code == .channelClosed {
            return "drained 50 datagrams after the peer closed, then channel-closed"
        }
    }

    static func holdServer(_ vchan: any Vchan) throws -> String {
        let start = monotonicMilliseconds()
        do {
            _ = try vchan.receive(count: 1)
            throw Failure("received data from a peer that should have died")
        } catch let error as SluiceError where error.code == .channelClosed {
            return "saw the peer's death after \(monotonicMilliseconds() - start) ms"
        }
    }

    /// What the `frames` client sends: hello, 100 chunks of stdout, end of stdout, exit.
    public static func goodFrames() throws -> [[UInt8]] {
        let encoder = FrameEncoder(direction: .serviceToCaller)
        var frames = [try encoder.encode(.hello(.current))]
        for index in 0..<100 {
            frames.append(
                try encoder.encode(
                    .data(DataChunk(stream: .stdout, bytes: [UInt8](repeating: UInt8(index), count: 1_000)))))
        }
        frames.append(try encoder.encode(.eof(.stdout)))
        frames.append(try encoder.encode(.exit(ExitStatus(code: 0, reason: .exited))))
        return frames
    }

    public static let duplicateKeyFrame: [UInt8] = {
        let header = Array(#"{"type":"eof","stream":"stdout","stream":"stderr"}"#.utf8)
        return bytes(UInt32(header.count)) + bytes(UInt32(0)) + header
    }()

    static func framesServer(_ vchan: any Vchan) throws -> String {
        let decoder = FrameDecoder(direction: .serviceToCaller)
        var count = 0
        while true {
            guard let prefix = try vchan.receive(count: WireLimits.prefixBytes),
                let lengths = prefix.withUnsafeBytes({ FramePrefix(reading: $0) })
            else { throw Failure("no prefix") }
            try lengths.validate(.default)
            guard let body = try vchan.receive(count: lengths.frameLength - WireLimits.prefixBytes) else {
                throw Failure("short frame")
            }
            do {
                _ = try decoder.decode(datagram: prefix + body)
                count += 1
            } catch {
                guard error.code == .duplicateKey, count == 103 else {
                    throw Failure("after \(count) frames: \(error)")
                }
                return "decoded \(count) frames, then refused the hostile one: \(error.code.name)"
            }
        }
    }

    // MARK: Helpers

    public static func bytes(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    public static func bytes(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }

    static func uint32(_ bytes: [UInt8]) -> UInt32 {
        bytes.prefix(4).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    static func uint64(_ bytes: [UInt8]) -> UInt64 {
        bytes.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }
}

/// Milliseconds of CLOCK_MONOTONIC.
public func monotonicMilliseconds() -> Int { MonotonicClock.milliseconds }

/// A deterministic byte pattern (xorshift), so both ends of a test can agree without sharing data.
public struct Pattern {
    var state: UInt64
    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    public mutating func bytes(_ count: Int) -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        for index in 0..<count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            result[index] = UInt8(truncatingIfNeeded: state)
        }
        return result
    }
}

/// FNV-1a over bytes.
public struct Checksum {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    public init() {}
    public mutating func add(_ bytes: [UInt8]) {
        for byte in bytes {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01B3
        }
    }
}
