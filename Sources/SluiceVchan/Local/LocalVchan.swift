internal import CSluiceLinux
import SluiceLocks
public import SluiceSystem
public import SluiceWire
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The local backend: libxenvchan's shared-ring layout in a sealed memfd, eventfd for the event channel, and a
/// socket pair whose hang-up stands in for Xen's unmap notification when a peer dies.
///
/// A server maps the memfd, lays out `vchan_interface` and registers with the broker through its domain's
/// `VchanRendezvous`; the client of the named peer domain gets the descriptors from the broker, validates the
/// page, maps it and marks itself live. See docs/vchan.md.
public final class LocalVchan: Vchan, @unchecked Sendable {
    public let peer: DomainID
    public let port: VchanPort
    public let isServer: Bool

    private let region: MappedRegion
    private let readRing: SharedRing
    private let writeRing: SharedRing
    /// The eventfd this end waits on; the peer signals it.
    private let ownEvent: EventNotifier
    /// The eventfd the peer waits on; this end signals it.
    private let peerEvent: EventNotifier
    /// This end of the liveness socket pair: it hangs up when the peer process dies or closes.
    private let liveness: FileDescriptor
    private let rendezvous: VchanRendezvous?
    private let resources = LockedValue(Resources())
    private let blocking = Atomic<Bool>(true)
    private let closedFlag = Atomic<Bool>(false)

    private struct Resources {
        var readiness: Epoll?
    }

    /// How many times a blocked call re-checks the ring before it sleeps on the eventfd. Spinning a few
    /// microseconds saves two system calls per wake-up when the peer is busy on another core.
    public static let spinCount = 2_000

    // MARK: Setup

    /// Creates a server for `peer` on `port`, with rings of at least `readMinimum` and `writeMinimum` bytes.
    /// It does not wait for the client (`state` is `.waitingForClient` until one connects).
    public static func server(
        rendezvous: VchanRendezvous,
        peer: DomainID,
        port: VchanPort,
        readMinimum: Int,
        writeMinimum: Int
    ) throws(SluiceError) -> LocalVchan {
        try server(
            rendezvous: rendezvous, peer: peer, port: port, readMinimum: readMinimum, writeMinimum: writeMinimum,
            initialIndex: 0)
    }

    /// As `server(...)`, with both rings' indices starting at `initialIndex` instead of 0: tests use a value
    /// just below 2^32 to cross the counters' wrap-around.
    public static func server(
        rendezvous: VchanRendezvous,
        peer: DomainID,
        port: VchanPort,
        readMinimum: Int,
        writeMinimum: Int,
        initialIndex: UInt32
    ) throws(SluiceError) -> LocalVchan {
        try prepareServer(readMinimum: readMinimum, writeMinimum: writeMinimum, initialIndex: initialIndex)
            .offer(rendezvous: rendezvous, peer: peer, port: port)
    }

    /// The first half of `server(...)`: the shared page, the rings and the events, made before the peer and port
    /// are known (a caller prepares its data channel while the daemon decides). `offer` then registers it.
    public static func prepareServer(readMinimum: Int, writeMinimum: Int, initialIndex: UInt32 = 0)
        throws(SluiceError) -> PreparedServer
    {
        let plan = try RingPlan(readMinimum: readMinimum, writeMinimum: writeMinimum)
        let pages = 1 + plan.leftPages + plan.rightPages
        let memory = try SharedMemory.create(name: "sluice-vchan", size: pages * VchanInterface.pageSize)
        let region: MappedRegion
        do {
            region = try MappedRegion(mapping: memory, size: pages * VchanInterface.pageSize)
        } catch {
            memory.close()
            throw error
        }
        let page = region.base
        page.storeBytes(
            of: UInt16(plan.leftOrder).littleEndian, toByteOffset: VchanInterface.leftOrder, as: UInt16.self)
        page.storeBytes(
            of: UInt16(plan.rightOrder).littleEndian, toByteOffset: VchanInterface.rightOrder, as: UInt16.self)
        for offset in [
            VchanInterface.leftCons, VchanInterface.leftProd, VchanInterface.rightCons, VchanInterface.rightProd,
        ] {
            page.storeBytes(of: initialIndex, toByteOffset: offset, as: UInt32.self)
        }
        for index in 0..<(plan.leftPages + plan.rightPages) {
            page.storeBytes(of: UInt32(1 + index), toByteOffset: VchanInterface.grants + 4 * index, as: UInt32.self)
        }
        page.storeBytes(
            of: VchanState.waitingForClient.rawValue, toByteOffset: VchanInterface.clientLive, as: UInt8.self)
        page.storeBytes(of: VchanState.connected.rawValue, toByteOffset: VchanInterface.serverLive, as: UInt8.self)
        page.storeBytes(of: VchanInterface.notifyWrite, toByteOffset: VchanInterface.clientNotify, as: UInt8.self)
        var created: [FileDescriptor] = [memory]
        do throws(SluiceError) {
            let serverEvent = try EventNotifier.create()
            created.append(serverEvent.descriptor)
            let clientEvent = try EventNotifier.create()
            created.append(clientEvent.descriptor)
            let sockets = try DatagramSocket.pair()
            return PreparedServer(
                plan: plan, memory: memory, region: region, serverEvent: serverEvent, clientEvent: clientEvent,
                sockets: sockets)
        } catch {
            for descriptor in created { descriptor.close() }
            throw error
        }
    }

    /// A server's shared page, rings and events, not yet offered to any peer. Dropping it frees everything.
    public final class PreparedServer: @unchecked Sendable {
        let plan: RingPlan
        let memory: FileDescriptor
        let region: MappedRegion
        let serverEvent: EventNotifier
        let clientEvent: EventNotifier
        let sockets: (DatagramSocket, DatagramSocket)
        private var offered = false

        init(
            plan: RingPlan, memory: FileDescriptor, region: MappedRegion, serverEvent: EventNotifier,
            clientEvent: EventNotifier, sockets: (DatagramSocket, DatagramSocket)
        ) {
            self.plan = plan
            self.memory = memory
            self.region = region
            self.serverEvent = serverEvent
            self.clientEvent = clientEvent
            self.sockets = sockets
        }

        deinit {
            guard !offered else { return }
            for descriptor in [
                memory, serverEvent.descriptor, clientEvent.descriptor, sockets.0.descriptor, sockets.1.descriptor,
            ] { descriptor.close() }
        }

        /// Registers the server for `peer` on `port` (once). Afterwards the vchan owns everything.
        public func offer(rendezvous: VchanRendezvous, peer: DomainID, port: VchanPort) throws(SluiceError)
            -> LocalVchan
        {
            guard !offered else { throw SluiceError(.vchanPortInUse, "this prepared vchan was already offered") }
            try rendezvous.register(
                peer: peer, port: port,
                descriptors: [memory, serverEvent.descriptor, clientEvent.descriptor, sockets.1.descriptor])
            offered = true
            memory.close()
            sockets.1.descriptor.close()
            let (left, right) = try LocalVchan.rings(region, plan, isServer: true)
            return LocalVchan(
                peer: peer, port: port, isServer: true, region: region, readRing: left, writeRing: right,
                ownEvent: serverEvent, peerEvent: clientEvent, liveness: sockets.0.descriptor,
                rendezvous: rendezvous)
        }
    }

    /// Connects to the server that domain `server` offers this domain on `port`. Fails with `vchan-not-found`
    /// if there is none yet (it does not wait, like `libxenvchan_client_init`) and `vchan-refused` if that
    /// port is reserved for another domain.
    public static func client(rendezvous: VchanRendezvous, server: DomainID, port: VchanPort) throws(SluiceError)
        -> LocalVchan
    {
        let descriptors = try rendezvous.connect(server: server, port: port)
        let memory = descriptors[0]
        let serverEvent = EventNotifier(descriptor: descriptors[1])
        let clientEvent = EventNotifier(descriptor: descriptors[2])
        let liveness = descriptors[3]
        do throws(SluiceError) {
            defer { memory.close() }
            // The server may be hostile (a caller serves its calls' data channels): nothing it passed is used before
            // the kernel has said what it is.
            let size = try VchanDescriptors.validate(descriptors)
            let region = try MappedRegion(mapping: memory, size: size)
            let plan = RingPlan(
                leftOrder: Int(
                    UInt16(
                        littleEndian: region.base.loadUnaligned(
                            fromByteOffset: VchanInterface.leftOrder, as: UInt16.self))),
                rightOrder: Int(
                    UInt16(
                        littleEndian: region.base.loadUnaligned(
                            fromByteOffset: VchanInterface.rightOrder, as: UInt16.self)))
            )
            try plan.validate()
            guard size == VchanInterface.pageSize * (1 + plan.leftPages + plan.rightPages) else {
                throw SluiceError(
                    .vchanInvalidRing, "the shared memory is \(size) bytes, not the page and rings its orders announce")
            }
            let (left, right) = try rings(region, plan, isServer: false)
            let vchan = LocalVchan(
                peer: server, port: port, isServer: false, region: region, readRing: right, writeRing: left,
                ownEvent: clientEvent, peerEvent: serverEvent, liveness: liveness, rendezvous: nil
            )
            sluice_store_release_u8(region.base + VchanInterface.clientLive, VchanState.connected.rawValue)
            sluice_store_release_u8(region.base + VchanInterface.serverNotify, VchanInterface.notifyWrite)
            serverEvent.signal()
            return vchan
        } catch {
            serverEvent.descriptor.close()
            clientEvent.descriptor.close()
            liveness.close()
            throw error
        }
    }

    /// Locates both rings in a mapped region, validating what a (possibly hostile) server wrote: the orders,
    /// and grants that name consecutive pages inside the region.
    private static func rings(_ region: MappedRegion, _ plan: RingPlan, isServer: Bool) throws(SluiceError) -> (
        left: SharedRing, right: SharedRing
    ) {
        try plan.validate()
        // The server reads left and writes right; the client the other way round.
        func side(_ indices: Int) -> SharedRing.Side {
            (indices == VchanInterface.leftCons) == isServer ? .reader : .writer
        }
        let pageCount = region.size / VchanInterface.pageSize
        var grantIndex = 0
        func ring(order: Int, indices: Int) throws(SluiceError) -> SharedRing {
            let size = UInt32(1) << UInt32(order)
            switch order {
            case VchanInterface.smallOrder:
                return SharedRing(
                    indices: region.base + indices, buffer: region.base + VchanInterface.smallRingOffset, size: size,
                    side: side(indices))
            case VchanInterface.largeOrder:
                return SharedRing(
                    indices: region.base + indices, buffer: region.base + VchanInterface.largeRingOffset, size: size,
                    side: side(indices))
            default:
                let pages = RingPlan.pages(order)
                let first = Int(
                    region.base.loadUnaligned(fromByteOffset: VchanInterface.grants + 4 * grantIndex, as: UInt32.self))
                for page in 0..<pages {
                    let grant = Int(
                        region.base.loadUnaligned(
                            fromByteOffset: VchanInterface.grants + 4 * (grantIndex + page), as: UInt32.self))
                    guard grant == first + page, grant >= 1, grant < pageCount else {
                        throw SluiceError(.vchanInvalidRing, "grant \(grant) does not name the next page of the ring")
                    }
                }
                grantIndex += pages
                return SharedRing(
                    indices: region.base + indices, buffer: region.base + first * VchanInterface.pageSize, size: size,
                    side: side(indices))
            }
        }
        let left = try ring(order: plan.leftOrder, indices: VchanInterface.leftCons)
        let right = try ring(order: plan.rightOrder, indices: VchanInterface.rightCons)
        return (left, right)
    }

    private init(
        peer: DomainID, port: VchanPort, isServer: Bool, region: MappedRegion, readRing: SharedRing,
        writeRing: SharedRing,
        ownEvent: EventNotifier, peerEvent: EventNotifier, liveness: FileDescriptor, rendezvous: VchanRendezvous?
    ) {
        self.peer = peer
        self.port = port
        self.isServer = isServer
        self.region = region
        self.readRing = readRing
        self.writeRing = writeRing
        self.ownEvent = ownEvent
        self.peerEvent = peerEvent
        self.liveness = liveness
        self.rendezvous = rendezvous
    }

    deinit {
        close()
        resources.withLock { $0.readiness?.close() }
        ownEvent.descriptor.close()
        peerEvent.descriptor.close()
        liveness.close()
    }

    // MARK: Notifications (libxenvchan's request_notify / send_notify)

    private var peerLiveOffset: Int { isServer ? VchanInterface.clientLive : VchanInterface.serverLive }
    private var ownLiveOffset: Int { isServer ? VchanInterface.serverLive : VchanInterface.clientLive }

    /// Asks the peer to signal when it does `bit`.
    private func requestNotify(_ bit: UInt8) {
        _ = sluice_fetch_or_u8(
            region.base + (isServer ? VchanInterface.clientNotify : VchanInterface.serverNotify), bit)
        sluice_full_fence()
    }

    /// Signals the peer if it asked to hear about `bit`.
    private func sendNotify(_ bit: UInt8) {
        sluice_full_fence()
        let previous = sluice_fetch_and_u8(
            region.base + (isServer ? VchanInterface.serverNotify : VchanInterface.clientNotify), ~bit)
        if previous & bit != 0 { peerEvent.signal() }
    }

    private var peerLive: UInt8 { sluice_load_acquire_u8(region.base + peerLiveOffset) }

    private var isOpenFast: Bool { peerLive != VchanState.closed.rawValue }

    // MARK: Vchan

    public var isBlocking: Bool {
        get { blocking.load(ordering: .relaxed) }
        set { blocking.store(newValue, ordering: .relaxed) }
    }

    public var maxDatagramBytes: Int { Int(writeRing.size) }
    public var receiveRingBytes: Int { Int(readRing.size) }

    public var dataReady: Int {
        requestNotify(VchanInterface.notifyWrite)
        return readRing.filled(wanted: Int.max)
    }

    public var bufferSpace: Int {
        requestNotify(VchanInterface.notifyRead)
        return writeRing.space(wanted: Int.max)
    }

    public var isReadable: Bool { readRing.filled(wanted: 1) > 0 }

    private func dataReady(atLeast count: Int) -> Int {
        let ready = readRing.filled(wanted: count)
        if ready >= count { return ready }
        requestNotify(VchanInterface.notifyWrite)
        return readRing.filled(wanted: count)
    }

    private func space(atLeast count: Int) -> Int {
        let space = writeRing.space(wanted: count)
        if space >= count { return space }
        requestNotify(VchanInterface.notifyRead)
        return writeRing.space(wanted: count)
    }

    public func send(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) -> Bool {
        guard bytes.count <= Int(writeRing.size) else {
            throw SluiceError(
                .datagramTooLarge, "a \(bytes.count)-byte datagram cannot fit a \(writeRing.size)-byte ring")
        }
        while true {
            guard isOpenFast, !isClosedLocally else { throw closedError() }
            if writeRing.space(wanted: bytes.count) >= bytes.count
                || spin(until: { self.writeRing.space(wanted: bytes.count) >= bytes.count })
            {
                writeRing.produce(bytes)
                sendNotify(VchanInterface.notifyWrite)
                return true
            }
            if space(atLeast: bytes.count) >= bytes.count { continue }
            guard isBlocking else { return false }
            try wait()
        }
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Bool {
        guard !isClosedLocally else { throw closedError() }
        guard buffer.count <= Int(readRing.size) else {
            throw SluiceError(
                .datagramTooLarge, "a \(buffer.count)-byte datagram cannot fit a \(readRing.size)-byte ring")
        }
        while true {
            if readRing.filled(wanted: buffer.count) >= buffer.count
                || spin(until: { self.readRing.filled(wanted: buffer.count) >= buffer.count })
            {
                readRing.consume(into: buffer)
                sendNotify(VchanInterface.notifyRead)
                return true
            }
            if dataReady(atLeast: buffer.count) >= buffer.count { continue }
            guard isOpenFast, !isClosedLocally else { throw closedError() }
            guard isBlocking else { return false }
            try wait()
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(SluiceError) -> Int {
        var written = 0
        while true {
            guard isOpenFast, !isClosedLocally else { throw closedError() }
            let remaining = bytes.count - written
            let count = min(space(atLeast: remaining), remaining)
            if count > 0 {
                writeRing.produce(UnsafeRawBufferPointer(rebasing: bytes[written..<written + count]))
                sendNotify(VchanInterface.notifyWrite)
                written += count
            }
            if written == bytes.count || !isBlocking { return written }
            if spin(until: { self.writeRing.space(wanted: 1) > 0 }) { continue }
            if space(atLeast: 1) > 0 { continue }
            try wait()
        }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int {
        guard !isClosedLocally else { throw closedError() }
        guard !buffer.isEmpty else { return 0 }
        while true {
            let ready = dataReady(atLeast: buffer.count)
            if ready > 0 {
                let count = min(ready, buffer.count)
                readRing.consume(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<count]))
                sendNotify(VchanInterface.notifyRead)
                return count
            }
            guard isOpenFast, !isClosedLocally else { throw closedError() }
            guard isBlocking else { return 0 }
            if spin(until: { self.readRing.filled(wanted: 1) > 0 }) { continue }
            if dataReady(atLeast: 1) > 0 { continue }
            try wait()
        }
    }

    /// In blocking mode, re-checks `ready` for a few microseconds without asking the peer for a signal:
    /// a peer busy on another core usually makes room or data within that time, and then neither side makes a
    /// system call. Returns whether `ready` became true. Non-blocking calls never spin.
    private func spin(until ready: () -> Bool) -> Bool {
        guard isBlocking else { return false }
        for _ in 0..<Self.spinCount {
            if ready() { return true }
            if !isOpenFast { return false }
            sluice_cpu_relax()
        }
        return false
    }

    public var readinessDescriptor: FileDescriptor {
        get throws(SluiceError) {
            let result = resources.withLock { resources in
                Result { () throws(SluiceError) -> FileDescriptor in
                    if let epoll = resources.readiness { return epoll.descriptor }
                    let epoll = try Epoll()
                    do throws(SluiceError) {
                        try epoll.add(ownEvent.descriptor, token: 0)
                        try epoll.add(liveness, token: 1)
                    } catch {
                        epoll.close()
                        throw error
                    }
                    resources.readiness = epoll
                    return epoll.descriptor
                }
            }
            return try result.get()
        }
    }

    public func wait() throws(SluiceError) {
        let ready = try Readiness.wait(ownEvent.descriptor, liveness, timeoutMilliseconds: -1)
        if ready.first { ownEvent.drain() }
        if ready.second { markPeerGone() }
    }

    public func consumeEvents() {
        // A signal explains the wake-up; only a wake-up without one can be the liveness socket's hang-up, which
        // stays readable and so wakes the reactor again if it was masked by a signal this time.
        if !ownEvent.drain() && Readiness.peerGone(liveness) { markPeerGone() }
    }

    /// What Xen's unmap notification does when a peer dies: its live flag becomes 0.
    private func markPeerGone() {
        sluice_store_release_u8(region.base + peerLiveOffset, VchanState.closed.rawValue)
    }

    public var state: VchanState {
        if isClosedLocally { return .closed }
        if Readiness.peerGone(liveness) { markPeerGone() }
        return VchanState(rawValue: peerLive) ?? .closed
    }

    private var isClosedLocally: Bool { closedFlag.load(ordering: .acquiring) }

    private func closedError() -> SluiceError {
        SluiceError(.channelClosed, isClosedLocally ? "this end of the vchan is closed" : "the peer closed the vchan")
    }

    public func close() {
        guard !closedFlag.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let waitingForClient = isServer && peerLive == VchanState.waitingForClient.rawValue
        sluice_store_release_u8(region.base + ownLiveOffset, VchanState.closed.rawValue)
        peerEvent.signal()
        if waitingForClient { rendezvous?.unregister(peer: peer, port: port) }
        // The descriptors stay open until deinit, so that a call racing with close() never touches a
        // descriptor number the process has since reused.
    }
}
