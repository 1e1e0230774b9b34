import SluiceDaemon
import SluiceWire
import Testing

@Suite("Offering a control channel again")
struct ReofferBackoffTests {
    static let second: UInt64 = 1_000_000_000

    @Test("an agent that went away gets its channel back at once, however often it goes")
    func lostChannels() {
        var backoff = ReofferBackoff()
        for _ in 0..<10 {
            #expect(backoff.delay(afterEnding: .channelClosed, opened: 0, ended: 1_000) == ReofferBackoff.base)
            #expect(backoff.delay(afterEnding: .systemCallFailed, opened: 0, ended: 1_000) == ReofferBackoff.base)
        }
        #expect(backoff.violations == 0)
    }

    @Test("violations in a row double the wait up to a second")
    func violationsInARow() {
        var backoff = ReofferBackoff()
        let codes: [SluiceError.Code] = [
            .invalidJSON, .duplicateKey, .wrongDirection, .invalidServiceName, .unknownField, .vchanInvalidRing,
            .unsupportedVersion, .frameTooLarge, .invalidJSON, .invalidJSON,
        ]
        let delays = codes.map { backoff.delay(afterEnding: $0, opened: 0, ended: Self.second) / 1_000_000 }
        #expect(delays == [20, 40, 80, 160, 320, 640, 1_000, 1_000, 1_000, 1_000])
        // Far more violations than the shift could take stay at the maximum.
        for _ in 0..<200 { _ = backoff.delay(afterEnding: .invalidJSON, opened: 0, ended: 0) }
        #expect(backoff.delay(afterEnding: .invalidJSON, opened: 0, ended: 0) == ReofferBackoff.maximum)
    }

    @Test("a channel that ends cleanly, or stayed up ten seconds, starts the count again")
    func forgiveness() {
        var backoff = ReofferBackoff()
        for _ in 0..<4 { _ = backoff.delay(afterEnding: .invalidJSON, opened: 0, ended: Self.second) }
        #expect(backoff.delay(afterEnding: .channelClosed, opened: 0, ended: Self.second) == ReofferBackoff.base)
        #expect(backoff.delay(afterEnding: .invalidJSON, opened: 0, ended: Self.second) == ReofferBackoff.base)
        #expect(backoff.delay(afterEnding: .invalidJSON, opened: 0, ended: Self.second) == 2 * ReofferBackoff.base)
        let long = backoff.delay(afterEnding: .invalidJSON, opened: Self.second, ended: 11 * Self.second)
        #expect(long == ReofferBackoff.base)
        // A clock that seems to go backwards forgives nothing.
        #expect(backoff.delay(afterEnding: .invalidJSON, opened: 5, ended: 1) == 2 * ReofferBackoff.base)
    }
}
