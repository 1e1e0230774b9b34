// sluice-example-file-send TARGET PATH...: copies files and directories to TARGET's example.FileCopy service (like
// qvm-copy), which unpacks them into ~/Incoming/<this domain>/ there. It streams through SluiceClient's streaming
// call, with a progress bar on stderr when stderr is a terminal. Symlinks are sent as symlinks; other special files
// are skipped with a warning. Exit 0 when the receiver kept everything, else its exit code (126 if refused).
import FileCopyArchive
import Foundation
import SluiceClient

struct Entry {
    var name: String
    var path: String
    var kind: Kind
    var size: UInt64
    var mode: UInt32
    enum Kind {
        case directory, file
        case symlink(String)
    }
}

func warn(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

/// The entries to send, parents before children.
func collect(_ path: String, as name: String, into entries: inout [Entry]) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return warn("skipping \(path): cannot stat it") }
    let mode = UInt32(info.st_mode) & 0o777
    switch info.st_mode & S_IFMT {
    case S_IFDIR:
        entries.append(Entry(name: name, path: path, kind: .directory, size: 0, mode: mode))
        let children = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        for child in children { collect(path + "/" + child, as: name + "/" + child, into: &entries) }
    case S_IFREG:
        entries.append(Entry(name: name, path: path, kind: .file, size: UInt64(info.st_size), mode: mode))
    case S_IFLNK:
        let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? ""
        entries.append(Entry(name: name, path: path, kind: .symlink(target), size: 0, mode: 0))
    default:
        warn("skipping \(path): not a file, directory or symlink")
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    warn("usage: sluice-example-file-send TARGET PATH...")
    exit(2)
}
var entries: [Entry] = []
for path in arguments[2...] {
    let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
    collect(trimmed, as: (trimmed as NSString).lastPathComponent, into: &entries)
}
let total = entries.reduce(UInt64(0)) { $0 + $1.size }
let showProgress = isatty(2) == 1
var sent: UInt64 = 0
@MainActor func progress() {
    guard showProgress, total > 0 else { return }
    let width = 40
    let done = Int(Double(sent) / Double(total) * Double(width))
    let bar = String(repeating: "#", count: done) + String(repeating: ".", count: width - done)
    FileHandle.standardError.write(Data("\r[\(bar)] \(sent * 100 / total)%".utf8))
}

do {
    let call = try await SluiceClient().call(target: arguments[1], service: "example.FileCopy")
    async let output = call.standardOutput.collect()
    async let errors = call.standardError.collect()
    try await call.standardInput.write(FileCopyArchive.magic)
    for entry in entries {
        switch entry.kind {
        case .directory:
            try await call.standardInput.write(FileCopyArchive.directoryRecord(entry.name, mode: entry.mode))
        case .symlink(let target):
            try await call.standardInput.write(FileCopyArchive.symlinkRecord(entry.name, target: target))
        case .file:
            guard let handle = FileHandle(forReadingAtPath: entry.path) else {
                warn("cannot read \(entry.path)")
                call.cancel()
                exit(1)
            }
            try await call.standardInput.write(
                FileCopyArchive.fileHeader(entry.name, mode: entry.mode, size: entry.size))
            var remaining = entry.size
            while remaining > 0 {
                let chunk = handle.readData(ofLength: Int(min(remaining, 256 * 1_024)))
                if chunk.isEmpty { break }
                try await call.standardInput.write(Array(chunk))
                remaining -= UInt64(chunk.count)
                sent += UInt64(chunk.count)
                progress()
            }
            if remaining > 0 {
                warn("\(entry.path) shrank while it was being sent; cancelling")
                call.cancel()
                exit(1)
            }
        }
    }
    try await call.standardInput.write([FileCopyArchive.end])
    call.standardInput.finish()
    let status = await call.exitStatus
    if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
    FileHandle.standardOutput.write(Data(await output))
    FileHandle.standardError.write(Data(await errors))
    exit(status)
} catch {
    if error.code == .refusedByPolicy {
        warn("Request refused")
        exit(126)
    }
    warn("sluice-example-file-send: \(error)")
    exit(125)
}
