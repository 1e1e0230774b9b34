internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// UNIX-domain sockets by path. Every descriptor is close-on-exec.
public enum UnixSocket {
    public enum Kind: Sendable {
        /// SOCK_SEQPACKET: message boundaries kept, like vchan datagrams.
        case datagram
        /// SOCK_STREAM.
        case stream
    }

    /// Binds and listens at `path` (replacing a stale socket file), with file mode `mode`.
    public static func listen(at path: String, kind: Kind, mode: UInt32 = 0o600) throws(SluiceError) -> FileDescriptor {
        let fd = kind == .datagram ? sluice_listen_seqpacket(path, mode) : sluice_listen_stream(path, mode)
        guard fd >= 0 else { throw SystemCall.error("listen on \(path)", errno) }
        return FileDescriptor(rawValue: fd)
    }

    public static func connect(to path: String, kind: Kind) throws(SluiceError) -> FileDescriptor {
        let fd = kind == .datagram ? sluice_connect_seqpacket(path) : sluice_connect_stream(path)
        guard fd >= 0 else { throw SystemCall.error("connect to \(path)", errno) }
        return FileDescriptor(rawValue: fd)
    }

    public static func accept(_ listener: FileDescriptor) throws(SluiceError) -> FileDescriptor {
        let fd = sluice_accept(listener.rawValue)
        guard fd >= 0 else { throw SystemCall.error("accept", errno) }
        return FileDescriptor(rawValue: fd)
    }

    /// Why an accept failed, for a caller that must tell "out of descriptors" (EMFILE, ENFILE) from the rest.
    public enum AcceptFailure: Error, Sendable {
        case outOfDescriptors
        case other(SluiceError)
    }

    /// As `accept`, telling a process (or the system) out of descriptors apart.
    public static func acceptTelling(_ listener: FileDescriptor) throws(AcceptFailure) -> FileDescriptor {
        let fd = sluice_accept(listener.rawValue)
        guard fd >= 0 else {
            let code = errno
            if code == EMFILE || code == ENFILE { throw .outOfDescriptors }
            throw .other(SystemCall.error("accept", code))
        }
        return FileDescriptor(rawValue: fd)
    }

    /// The kernel's record of who is at the other end of a connected socket (SO_PEERCRED): it cannot be forged.
    public static func peerCredentials(_ socket: FileDescriptor) throws(SluiceError) -> (
        pid: Int32, uid: UInt32, gid: UInt32
    ) {
        var pid: pid_t = 0
        var uid: uid_t = 0
        var gid: gid_t = 0
        guard sluice_peer_credentials(socket.rawValue, &pid, &uid, &gid) == 0 else {
            throw SystemCall.error("getsockopt(SO_PEERCRED)", errno)
        }
        return (pid, uid, gid)
    }

    public static func setNonBlocking(_ fd: FileDescriptor, _ nonBlocking: Bool = true) throws(SluiceError) {
        guard sluice_set_nonblocking(fd.rawValue, nonBlocking ? 1 : 0) == 0 else {
            throw SystemCall.error("fcntl(O_NONBLOCK)", errno)
        }
    }
}

/// Process-wide descriptor facts.
public enum ProcessDescriptors {
    /// How many descriptors this process has open.
    public static var openCount: Int { Int(sluice_count_open_fds()) }

    /// This process's soft limit on open descriptors (RLIMIT_NOFILE).
    public static var limit: Int {
        var value = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &value) == 0 else { return 1_024 }
        return Int(clamping: value.rlim_cur)
    }

    /// Raises the soft descriptor limit to at least `wanted` (capped by the hard limit); returns the new limit.
    @discardableResult
    public static func raiseLimit(to wanted: Int) -> Int { Int(sluice_raise_fd_limit(wanted)) }
}
