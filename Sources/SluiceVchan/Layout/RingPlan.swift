public import SluiceWire

/// Where the two rings of a new vchan go, decided exactly as `libxenvchan_server_init` decides it.
public struct RingPlan: Sendable, Hashable {
    /// The client-to-server ring's order (the server reads it).
    public var leftOrder: Int
    /// The server-to-client ring's order.
    public var rightOrder: Int

    public init(leftOrder: Int, rightOrder: Int) {
        self.leftOrder = leftOrder
        self.rightOrder = rightOrder
    }

    /// The plan for a server that wants to read at least `readMinimum` and write at least `writeMinimum` bytes.
    ///
    /// Sizes round up to a power of two of at least a page; rings that fit in 1 KiB and 2 KiB share the first
    /// page instead (one ring per slot). Over 1 MiB is `ring-too-large` (507).
    public init(readMinimum: Int, writeMinimum: Int) throws(SluiceError) {
        let maxRing = 1 << VchanInterface.maxOrder
        guard readMinimum <= maxRing, writeMinimum <= maxRing, readMinimum >= 0, writeMinimum >= 0 else {
            throw SluiceError(.ringTooLarge, "a vchan ring is at most \(maxRing) bytes")
        }
        let small = 1 << VchanInterface.smallOrder
        let large = 1 << VchanInterface.largeOrder
        var left = Self.minimumOrder(readMinimum)
        var right = Self.minimumOrder(writeMinimum)
        if readMinimum <= small && writeMinimum <= large {
            left = VchanInterface.smallOrder
            right = VchanInterface.largeOrder
        } else if readMinimum <= large && writeMinimum <= small {
            left = VchanInterface.largeOrder
            right = VchanInterface.smallOrder
        } else if readMinimum <= large {
            left = VchanInterface.largeOrder
        } else if writeMinimum <= large {
            right = VchanInterface.largeOrder
        }
        self.init(leftOrder: left, rightOrder: right)
    }

    /// Pages granted for the left ring (0 when it lives in the shared page).
    public var leftPages: Int { Self.pages(leftOrder) }
    public var rightPages: Int { Self.pages(rightOrder) }

    /// Checks a plan read from a peer's shared page: orders 10...20, and the in-page slots used once each, with
    /// the grant list ending before the first in-page ring.
    public func validate() throws(SluiceError) {
        for order in [leftOrder, rightOrder] where order < VchanInterface.smallOrder || order > VchanInterface.maxOrder
        {
            throw SluiceError(.vchanInvalidRing, "ring order \(order) is outside 10...20")
        }
        if leftOrder == rightOrder && leftOrder < VchanInterface.pageShift {
            throw SluiceError(.vchanInvalidRing, "both rings claim the same in-page slot")
        }
        let grantsEnd = VchanInterface.grants + 4 * (leftPages + rightPages)
        var limit = VchanInterface.pageSize
        if leftOrder == VchanInterface.smallOrder || rightOrder == VchanInterface.smallOrder {
            limit = VchanInterface.smallRingOffset
        } else if leftOrder == VchanInterface.largeOrder || rightOrder == VchanInterface.largeOrder {
            limit = VchanInterface.largeRingOffset
        }
        guard grantsEnd <= limit else {
            throw SluiceError(.vchanInvalidRing, "the grant list would overlap a ring")
        }
    }

    static func pages(_ order: Int) -> Int {
        order >= VchanInterface.pageShift ? 1 << (order - VchanInterface.pageShift) : 0
    }

    static func minimumOrder(_ size: Int) -> Int {
        var order = VchanInterface.pageShift
        while size > 1 << order { order += 1 }
        return order
    }
}
