/// Where call ids come from: the system's random generator (getrandom) in the daemon, so that a domain that sees its
/// own calls' ids learns nothing about anyone else's; a seeded sequence in tests, so that a failing run repeats.
public struct CallIDGenerator: Sendable, Hashable {
    private var seed: UInt64?

    /// Ids from the system's cryptographic random generator.
    public static var system: CallIDGenerator { CallIDGenerator(seed: nil) }

    /// A repeatable sequence (SplitMix64), for tests only: it is predictable.
    public static func seeded(_ seed: UInt64) -> CallIDGenerator { CallIDGenerator(seed: seed) }

    /// The next candidate id, in 1 to 2^53 − 1.
    mutating func next() -> CallID {
        let value: UInt64
        if var state = seed {
            state &+= 0x9E37_79B9_7F4A_7C15
            var mixed = state
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            mixed ^= mixed >> 31
            seed = state
            value = mixed
        } else {
            var system = SystemRandomNumberGenerator()
            value = system.next()
        }
        return CallID(rawValue: value & CallID.max == 0 ? 1 : value & CallID.max)!
    }
}
