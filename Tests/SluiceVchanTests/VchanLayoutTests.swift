import CXenVchan
import SluiceVchan
import SluiceWire
import Testing

@Suite("The shared page matches Xen's vchan_interface")
struct VchanLayoutTests {
    @Test("every offset equals the C header's offsetof")
    func offsets() {
        let c = sluice_vchan_layout()
        #expect(VchanInterface.leftCons == c.left_cons)
        #expect(VchanInterface.leftProd == c.left_prod)
        #expect(VchanInterface.rightCons == c.right_cons)
        #expect(VchanInterface.rightProd == c.right_prod)
        #expect(VchanInterface.leftOrder == c.left_order)
        #expect(VchanInterface.rightOrder == c.right_order)
        #expect(VchanInterface.clientLive == c.cli_live)
        #expect(VchanInterface.serverLive == c.srv_live)
        #expect(VchanInterface.clientNotify == c.cli_notify)
        #expect(VchanInterface.serverNotify == c.srv_notify)
        #expect(VchanInterface.grants == c.grants)
        #expect(VchanInterface.headerSize == c.size)
        #expect(UInt32(VchanInterface.notifyWrite) == c.notify_write)
        #expect(UInt32(VchanInterface.notifyRead) == c.notify_read)
    }

    @Test(
        "ring placement follows libxenvchan_server_init",
        arguments: [
            (1_024, 2_048, 10, 11), (2_048, 1_024, 11, 10), (1_024, 1_024, 10, 11), (2_048, 65_536, 11, 16),
            (65_536, 2_048, 16, 11), (4_096, 4_096, 12, 12), (5_000, 1 << 20, 13, 20), (0, 0, 10, 11),
        ])
    func placement(_ read: Int, _ write: Int, _ left: Int, _ right: Int) throws {
        let plan = try RingPlan(readMinimum: read, writeMinimum: write)
        #expect(plan.leftOrder == left)
        #expect(plan.rightOrder == right)
        try plan.validate()
    }

    @Test("a ring over 1 MiB is refused")
    func tooLarge() {
        #expect(throws: SluiceError.self) { try RingPlan(readMinimum: (1 << 20) + 1, writeMinimum: 4_096) }
    }

    @Test(
        "a hostile page's orders are rejected", arguments: [(10, 10), (11, 11), (9, 12), (12, 21), (0, 0)])
    func invalidOrders(_ left: Int, _ right: Int) {
        #expect(throws: SluiceError.self) { try RingPlan(leftOrder: left, rightOrder: right).validate() }
    }
}
