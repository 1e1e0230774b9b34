internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// What a descriptor received from a peer really is, as the kernel reports it (fstat, F_GET_SEALS, SO_TYPE and its
/// `/proc/self/fd` link), so that nothing trusts a peer's word for it. A peer that passes a pipe where an eventfd
/// belongs would otherwise leave its receiver blocked for ever in a read (docs/vchan.md, "Descriptors from a peer").
public enum DescriptorKind: Equatable, Sendable, CustomStringConvertible {
    /// A memfd whose size is sealed (F_SEAL_SHRINK and F_SEAL_GROW, and F_SEAL_SEAL so no seal can be added), of
    /// `size` bytes.
    case sealedMemory(size: Int)
    /// A memfd or other file whose size is not sealed.
    case unsealedMemory(size: Int)
    case eventfd
    /// A UNIX socket of type `type` (`SOCK_SEQPACKET`, ...).
    case unixSocket(type: Int32)
    case otherSocket
    case pipe
    case regularFile
    case directory
    case other(String)

    public var description: String {
        switch self {
        case .sealedMemory(let size): "a sealed memfd of \(size) bytes"
        case .unsealedMemory(let size): "unsealed memory of \(size) bytes"
        case .eventfd: "an eventfd"
        case .unixSocket(let type): type == Int32(SOCK_SEQPACKET.rawValue) ? "a SEQPACKET socket" : "a UNIX socket"
        case .otherSocket: "a socket that is not a UNIX one"
        case .pipe: "a pipe"
        case .regularFile: "a regular file"
        case .directory: "a directory"
        case .other(let what): what
        }
    }

    /// What `descriptor` is.
    public static func of(_ descriptor: FileDescriptor) throws(SluiceError) -> DescriptorKind {
        var info = sluice_descriptor_info()
        guard sluice_descriptor_probe(descriptor.rawValue, &info) == 0 else { throw SystemCall.error("fstat", errno) }
        let link = withUnsafeBytes(of: info.link) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        let type = info.mode & UInt32(S_IFMT)
        if link == "anon_inode:[eventfd]" { return .eventfd }
        if type == UInt32(S_IFSOCK) {
            return info.socket_family == AF_UNIX ? .unixSocket(type: info.socket_type) : .otherSocket
        }
        if type == UInt32(S_IFIFO) { return .pipe }
        if type == UInt32(S_IFDIR) { return .directory }
        if info.seals >= 0 {
            let size = Int(info.size)
            let required = sluice_seals_size_sealed()
            return Int32(info.seals) & required == required ? .sealedMemory(size: size) : .unsealedMemory(size: size)
        }
        if type == UInt32(S_IFREG) { return .regularFile }
        return .other(link.isEmpty ? "a descriptor of mode \(String(info.mode, radix: 8))" : link)
    }

    /// Checks that `descriptor` is what it must be (`what` names its role in messages), and makes it non-blocking
    /// when the code that uses it expects that. Code `wrong-descriptor` (521) otherwise.
    public static func expect(
        _ descriptor: FileDescriptor, _ what: String, makeNonBlocking: Bool = false,
        _ accepts: (DescriptorKind) -> Bool
    ) throws(SluiceError) -> DescriptorKind {
        let kind = try of(descriptor)
        guard accepts(kind) else {
            throw SluiceError(.wrongDescriptor, "the peer passed \(kind) as \(what)")
        }
        if makeNonBlocking && sluice_set_nonblocking(descriptor.rawValue, 1) != 0 {
            throw SystemCall.error("fcntl(O_NONBLOCK)", errno)
        }
        return kind
    }
}
