import Foundation

/// A fresh directory under the system's temporary directory, removed with everything in it by `remove()`. It is
/// searchable and readable by every user (mode 0755): a `sluice-host` running as root runs each domain as a user of
/// its own, which must reach the host's run directory and service scripts inside it.
public struct TemporaryDirectory: Sendable {
    public let path: String

    public init(prefix: String = "sluice-test") throws {
        let base = FileManager.default.temporaryDirectory.path
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw CocoaError(.fileWriteUnknown)
        }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        chmod(path, 0o755)
    }

    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
