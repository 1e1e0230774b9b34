#if canImport(Glibc)
    import Glibc
#endif

/// Finds the executables SwiftPM built next to the running test binary (`.build/<triple>/<config>/`), so that
/// tests run the real programs rather than stand-ins.
public enum BuiltProducts {
    /// The directory of the running executable.
    public static var directory: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "." }
        let path = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }

    /// The path of the built product `name`, whether or not it exists yet.
    public static func path(of name: String) -> String { directory + "/" + name }
}
