internal import CSluiceLinux
public import SluiceWire

#if canImport(Glibc)
    import Glibc
#endif

/// Anonymous shared memory (memfd) that can be mapped by this process and, through its descriptor, by another.
public enum SharedMemory {
    /// Creates a memfd of `size` bytes (zero-filled) and seals its size, so no holder can shrink it under a
    /// peer's mapping.
    /// `sealed: false` leaves the size unsealed: only for tests of the checks that refuse such memory.
    public static func create(name: String, size: Int, sealed: Bool = true) throws(SluiceError) -> FileDescriptor {
        let fd = sluice_memfd_create(name)
        guard fd >= 0 else { throw SystemCall.error("memfd_create", errno) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SystemCall.error("ftruncate", code)
        }
        guard !sealed || sluice_memfd_seal_size(fd) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SystemCall.error("fcntl(F_ADD_SEALS)", code)
        }
        return FileDescriptor(rawValue: fd)
    }

    /// The size of a memfd, after checking that its size is sealed (a peer's memfd that could shrink is refused).
    public static func sealedSize(of fd: FileDescriptor) throws(SluiceError) -> Int {
        guard sluice_memfd_is_size_sealed(fd.rawValue) == 1 else {
            throw SluiceError(.systemCallFailed, "the shared memory is not sealed against resizing")
        }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw SystemCall.error("fstat", errno) }
        return Int(info.st_size)
    }
}

/// A shared mapping of a descriptor, unmapped when the last reference goes.
public final class MappedRegion: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let size: Int

    public init(mapping fd: FileDescriptor, size: Int) throws(SluiceError) {
        let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0)
        guard let pointer, pointer != MAP_FAILED else { throw SystemCall.error("mmap", errno) }
        base = pointer
        self.size = size
    }

    deinit { munmap(base, size) }
}
