internal import CSluiceLinux

/// One direction of a vchan: a `{cons, prod}` pair in the shared page and a power-of-two buffer.
///
/// The indices are free-running `UInt32` counters: `prod - cons` is the fill level whatever their values, so
/// wrap-around needs no special case. The peer is not trusted: a fill level above the ring size (which only a
/// corrupt or hostile peer can produce) reads as "nothing there" and "no space", as in libxenvchan, and every
/// copy is bounded by the ring size.
struct SharedRing {
    /// Points at this ring's `cons` (`prod` follows at +4).
    let indices: UnsafeMutableRawPointer
    let buffer: UnsafeMutableRawPointer
    let size: UInt32

    var consumer: UInt32 { sluice_load_acquire_u32(indices) }
    var producer: UInt32 { sluice_load_acquire_u32(indices + 4) }

    /// Bytes the reader may take.
    var filled: Int {
        let fill = producer &- consumer
        return fill > size ? 0 : Int(fill)
    }

    /// Bytes the writer may add.
    var space: Int {
        let fill = producer &- consumer
        return fill > size ? 0 : Int(size - fill)
    }

    /// Copies `bytes` in at the producer index and publishes them (release), for the writer.
    func produce(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        guard count > 0, let source = bytes.baseAddress else { return }
        let start = producer
        let offset = Int(start & (size - 1))
        let first = min(count, Int(size) - offset)
        (buffer + offset).copyMemory(from: source, byteCount: first)
        if first < count {
            buffer.copyMemory(from: source + first, byteCount: count - first)
        }
        sluice_store_release_u32(indices + 4, start &+ UInt32(count))
    }

    /// Copies bytes out from the consumer index, then releases the space (release), for the reader.
    func consume(into target: UnsafeMutableRawBufferPointer) {
        let count = target.count
        guard count > 0, let destination = target.baseAddress else { return }
        let start = consumer
        let offset = Int(start & (size - 1))
        let first = min(count, Int(size) - offset)
        destination.copyMemory(from: buffer + offset, byteCount: first)
        if first < count {
            (destination + first).copyMemory(from: buffer, byteCount: count - first)
        }
        sluice_store_release_u32(indices, start &+ UInt32(count))
    }
}
