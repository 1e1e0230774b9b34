internal import CSluiceLinux
import Synchronization

/// One direction of a vchan: a `{cons, prod}` pair in the shared page and a power-of-two buffer.
///
/// The indices are free-running `UInt32` counters: `prod - cons` is the fill level whatever their values, so
/// wrap-around needs no special case. Each side keeps a private copy of the index it owns and a cached copy of
/// the peer's, and re-reads the shared one only when the cached view is not enough: the cache line holding the
/// indices then moves between the two cores once per batch rather than on every check.
///
/// Within a process, one thread produces (or consumes) at a time, but others may ask how full the ring is (the
/// reactor's busy-poll probe, a sender waiting for space). So the two private indices are relaxed atomics: a reader of
/// them may see an older value, which only ever makes the ring look emptier to a reader or fuller to a writer, and
/// the next check re-reads the shared index.
///
/// The peer is not trusted: a fill level above the ring size (which only a corrupt or hostile peer can produce)
/// reads as "nothing there" and "no space", as in libxenvchan, and every copy is bounded by the ring size.
final class SharedRing: @unchecked Sendable {
    /// Points at this ring's `cons` (`prod` follows at +4).
    let indices: UnsafeMutableRawPointer
    let buffer: UnsafeMutableRawPointer
    let size: UInt32

    /// The owner's index (`prod` for the writer, `cons` for the reader), and the last seen value of the other.
    private let ownIndex: Atomic<UInt32>
    private let peerIndex: Atomic<UInt32>

    private var own: UInt32 {
        get { ownIndex.load(ordering: .relaxed) }
        set { ownIndex.store(newValue, ordering: .relaxed) }
    }
    private var cachedPeer: UInt32 {
        get { peerIndex.load(ordering: .relaxed) }
        set { peerIndex.store(newValue, ordering: .relaxed) }
    }

    enum Side { case reader, writer }

    init(indices: UnsafeMutableRawPointer, buffer: UnsafeMutableRawPointer, size: UInt32, side: Side) {
        self.indices = indices
        self.buffer = buffer
        self.size = size
        let consumer = sluice_load_acquire_u32(indices)
        let producer = sluice_load_acquire_u32(indices + 4)
        ownIndex = Atomic(side == .reader ? consumer : producer)
        peerIndex = Atomic(side == .reader ? producer : consumer)
    }

    private var sharedConsumer: UInt32 { sluice_load_acquire_u32(indices) }
    private var sharedProducer: UInt32 { sluice_load_acquire_u32(indices + 4) }

    // MARK: Reader

    /// Bytes the reader may take, re-reading the producer only when the cached view has fewer than `wanted`.
    func filled(wanted: Int) -> Int {
        let mine = own
        var fill = cachedPeer &- mine
        if fill > size || Int(fill) < wanted {
            let producer = sharedProducer
            cachedPeer = producer
            fill = producer &- mine
        }
        return fill > size ? 0 : Int(fill)
    }

    /// Copies bytes out from the consumer index, then releases the space, for the reader.
    func consume(into target: UnsafeMutableRawBufferPointer) {
        let count = target.count
        guard count > 0, let destination = target.baseAddress else { return }
        let mine = own
        let offset = Int(mine & (size - 1))
        let first = min(count, Int(size) - offset)
        destination.copyMemory(from: buffer + offset, byteCount: first)
        if first < count {
            (destination + first).copyMemory(from: buffer, byteCount: count - first)
        }
        own = mine &+ UInt32(count)
        sluice_store_release_u32(indices, mine &+ UInt32(count))
    }

    // MARK: Writer

    /// Bytes the writer may add, re-reading the consumer only when the cached view has less than `wanted`.
    func space(wanted: Int) -> Int {
        let mine = own
        var fill = mine &- cachedPeer
        if fill > size || Int(size - fill) < wanted {
            let consumer = sharedConsumer
            cachedPeer = consumer
            fill = mine &- consumer
        }
        return fill > size ? 0 : Int(size - fill)
    }

    /// Copies `bytes` in at the producer index and publishes them (release), for the writer.
    func produce(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        guard count > 0, let source = bytes.baseAddress else { return }
        let mine = own
        let offset = Int(mine & (size - 1))
        let first = min(count, Int(size) - offset)
        (buffer + offset).copyMemory(from: source, byteCount: first)
        if first < count {
            buffer.copyMemory(from: source + first, byteCount: count - first)
        }
        own = mine &+ UInt32(count)
        sluice_store_release_u32(indices + 4, mine &+ UInt32(count))
    }
}
