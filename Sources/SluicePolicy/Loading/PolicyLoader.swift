/// A loaded policy: the rules in evaluation order, and the files they came from.
public struct Policy: Sendable, Hashable {
    public var rules: [PolicyRule]
    /// Every file read, in the order read (top-level, included, compat).
    public var files: [String]

    public init(rules: [PolicyRule], files: [String] = []) {
        self.rules = rules
        self.files = files
    }
}

/// Reads policy directories and files, following `!include`, `!include-dir`, `!include-service` and
/// `!compat-4.0`, and fails closed: any error anywhere makes the whole load fail.
///
/// - Files are `*.policy` in the given directories, merged and sorted by file name (byte order, as the C
///   locale); the same name in two directories is read from the first. Names starting with `.`, other
///   suffixes and non-regular files are ignored; a considered name outside `[0-9a-z_.-]` is an error.
/// - Relative include paths resolve against the directory of the top-level file being loaded.
public struct PolicyLoader: Sendable {
    public let fileSystem: any PolicyFileSystem
    /// Where `!compat-4.0` reads the old per-service files.
    public var compatDirectory: String
    /// Deepest nesting of includes before the load fails (qrexec has no limit and crashes on a cycle).
    public static let maxIncludeDepth = 32

    /// The default `!compat-4.0` directory, as in qrexec.
    public static let defaultCompatDirectory = "/etc/qubes-rpc/policy"

    public init(fileSystem: any PolicyFileSystem = LocalFileSystem(), compatDirectory: String = defaultCompatDirectory)
    {
        self.fileSystem = fileSystem
        self.compatDirectory = compatDirectory
    }

    /// Loads every policy file of `directories` (first one wins on a shared name).
    public func load(directories: [String]) throws(PolicyError) -> Policy {
        var chosen: [String: String] = [:]
        for directory in directories {
            guard fileSystem.kind(of: directory) == .directory else {
                throw PolicyError(path: directory, message: "not a directory")
            }
            for path in try policyFiles(in: directory) {
                let name = Self.baseName(path)
                if chosen[name] == nil { chosen[name] = path }
            }
        }
        var session = Session(loader: self)
        for name in chosen.keys.sorted(by: Self.byteOrder) {
            let path = chosen[name]!
            try session.loadFile(path, base: Self.directoryName(path), depth: 0)
        }
        return Policy(rules: session.rules, files: session.files)
    }

    /// Loads one file (`sluice-policy eval --policy-file`).
    public func load(file path: String) throws(PolicyError) -> Policy {
        guard fileSystem.kind(of: path) == .regular else { throw PolicyError(path: path, message: "not a file") }
        var session = Session(loader: self)
        try session.loadFile(path, base: Self.directoryName(path), depth: 0)
        return Policy(rules: session.rules, files: session.files)
    }

    /// The considered `*.policy` files of a directory, sorted; an invalid considered name fails the load.
    func policyFiles(in directory: String) throws(PolicyError) -> [String] {
        var paths: [String] = []
        for name in try fileSystem.list(directory) {
            guard name.hasSuffix(".policy"), !name.hasPrefix(".") else { continue }
            let path = directory + "/" + name
            guard fileSystem.kind(of: path) == .regular else { continue }
            if let bad = name.utf8.first(where: { !Self.isFileNameByte($0) }) {
                throw PolicyError(
                    path: path,
                    message:
                        "invalid file name: \(RuleParser.quoted(bad)) is not in [0-9a-z_.-]; the whole policy is unusable until it is renamed"
                )
            }
            paths.append(path)
        }
        return paths.sorted(by: Self.byteOrder)
    }

    static func isFileNameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2E || byte == 0x5F || byte == 0x2D
    }

    static func byteOrder(_ lhs: String, _ rhs: String) -> Bool { lhs.utf8.lexicographicallyPrecedes(rhs.utf8) }

    static func baseName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    static func directoryName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The rule's file as decisions name it: the base name without `.policy`.
    static func displayName(_ path: String) -> String {
        let name = baseName(path)
        return name.hasSuffix(".policy") ? String(name.dropLast(".policy".count)) : name
    }

    /// Lints `directories` (or single files): unlike `load`, it goes on after an error and reports each bad line,
    /// then checks the rules that loaded for ones that can never match.
    public func lint(paths: [String]) -> (errors: [PolicyError], warnings: [PolicyWarning]) {
        var session = Session(loader: self)
        session.collecting = true
        var chosen: [String: String] = [:]
        for path in paths {
            switch fileSystem.kind(of: path) {
            case .directory:
                do {
                    for file in try policyFiles(in: path) where chosen[Self.baseName(file)] == nil {
                        chosen[Self.baseName(file)] = file
                    }
                } catch {
                    session.errors.append(error)
                }
            case .regular:
                chosen[Self.baseName(path)] = chosen[Self.baseName(path)] ?? path
            default:
                session.errors.append(PolicyError(path: path, message: "no such file or directory"))
            }
        }
        for name in chosen.keys.sorted(by: Self.byteOrder) {
            let path = chosen[name]!
            do {
                try session.loadFile(path, base: Self.directoryName(path), depth: 0)
            } catch {
                session.errors.append(error)
            }
        }
        return (session.errors, ShadowAnalysis.warnings(Policy(rules: session.rules)))
    }

    /// One load: the rules so far and the include stack.
    struct Session {
        let loader: PolicyLoader
        var collecting = false
        var errors: [PolicyError] = []
        var rules: [PolicyRule] = []
        var files: [String] = []
        var stack: [String] = []

        var fileSystem: any PolicyFileSystem { loader.fileSystem }

        func resolve(_ path: String, base: String) -> String {
            path.hasPrefix("/") ? path : base + "/" + path
        }

        mutating func enter(_ path: String, from site: PolicyError, depth: Int) throws(PolicyError) {
            let key = fileSystem.canonical(path)
            guard !stack.contains(key) else {
                var error = site
                error.message = "include cycle: \(path) is already being read"
                throw error
            }
            guard depth <= PolicyLoader.maxIncludeDepth else {
                var error = site
                error.message = "includes nested deeper than \(PolicyLoader.maxIncludeDepth)"
                throw error
            }
            stack.append(key)
            files.append(path)
        }

        mutating func loadFile(_ path: String, base: String, depth: Int) throws(PolicyError) {
            try enter(path, from: PolicyError(path: path, message: ""), depth: depth)
            defer { stack.removeLast() }
            let text = try fileSystem.read(path)
            let displayName = PolicyLoader.displayName(path)
            var lineNumber = 0
            for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
                lineNumber += 1
                let line = LineFields.stripped(rawLine)
                if line.isEmpty || line.hasPrefix("#") { continue }
                let fields = LineFields(rawLine).fields
                do throws(PolicyError) {
                    if line.hasPrefix("!") {
                        try directive(fields, path: path, line: lineNumber, base: base, depth: depth)
                    } else {
                        rules.append(
                            try RuleParser.rule(
                                fields, path: path, origin: RuleOrigin(file: displayName, line: lineNumber)))
                    }
                } catch {
                    guard collecting else { throw error }
                    errors.append(error)
                }
            }
        }

        mutating func directive(_ fields: [LineFields.Field], path: String, line: Int, base: String, depth: Int)
            throws(PolicyError)
        {
            let name = fields[0].text
            let parameters = fields.dropFirst()
            let site = PolicyError(path: path, line: line, column: fields[0].column, message: "")
            func count(_ expected: Int, _ usage: String) throws(PolicyError) {
                guard parameters.count == expected else {
                    var error = site
                    error.message = "invalid number of params for \(name): expected \(usage)"
                    throw error
                }
            }
            switch name {
            case "!include":
                try count(1, "!include PATH")
                let target = resolve(parameters.first!.text, base: base)
                guard fileSystem.kind(of: target) == .regular else {
                    throw PolicyError(
                        path: path, line: line, column: parameters.first!.column, message: "not a file: \(target)")
                }
                try loadFile(target, base: base, depth: depth + 1)
            case "!include-dir":
                try count(1, "!include-dir DIRECTORY")
                let target = resolve(parameters.first!.text, base: base)
                guard fileSystem.kind(of: target) == .directory else {
                    throw PolicyError(
                        path: path, line: line, column: parameters.first!.column, message: "not a directory: \(target)")
                }
                try enter(target, from: site, depth: depth + 1)
                defer { stack.removeLast() }
                for file in try loader.policyFiles(in: target) {
                    try loadFile(file, base: base, depth: depth + 1)
                }
            case "!include-service":
                try count(3, "!include-service SERVICE ARGUMENT PATH")
                let fieldsArray = Array(parameters)
                let (service, argument) = try RuleParser.serviceAndArgument(
                    fieldsArray[0], fieldsArray[1], path: path, line: line)
                let target = resolve(fieldsArray[2].text, base: base)
                guard fileSystem.kind(of: target) == .regular else {
                    throw PolicyError(
                        path: path, line: line, column: fieldsArray[2].column, message: "not a file: \(target)")
                }
                try loadServiceFile(target, service: service, argument: argument, base: base, depth: depth + 1)
            case "!compat-4.0":
                try count(0, "no parameters")
                try loadCompat(site: site, depth: depth + 1)
            default:
                var error = site
                error.message =
                    "invalid directive \(RuleParser.quoted(name)): expected !include, !include-dir, !include-service or !compat-4.0"
                throw error
            }
        }

        /// An old-format file for one service and argument: `SOURCE TARGET ACTION[,PARAMS]`, with `$` keywords.
        mutating func loadServiceFile(
            _ path: String, service: String?, argument: String?, base: String, depth: Int, displayName: String? = nil
        ) throws(PolicyError) {
            try enter(path, from: PolicyError(path: path, message: ""), depth: depth)
            defer { stack.removeLast() }
            let text = try fileSystem.read(path)
            var lineNumber = 0
            for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
                lineNumber += 1
                let stripped = LineFields.stripped(rawLine)
                if stripped.isEmpty || stripped.hasPrefix("#") { continue }
                let substituted = String(rawLine)
                    .replacing("$include:", with: "!include ")
                    .replacing("$", with: "@")
                    .replacing(",", with: " ")
                let fields = LineFields(Substring(substituted)).fields
                if fields[0].text.hasPrefix("!") {
                    guard fields[0].text == "!include" else {
                        throw PolicyError(
                            path: path, line: lineNumber, column: fields[0].column,
                            message:
                                "invalid directive \(RuleParser.quoted(fields[0].text)) in an old-format file: only $include: is allowed"
                        )
                    }
                    guard fields.count == 2 else {
                        throw PolicyError(
                            path: path, line: lineNumber, column: fields[0].column,
                            message: "invalid number of params for $include:")
                    }
                    let target = resolve(fields[1].text, base: base)
                    guard fileSystem.kind(of: target) == .regular else {
                        throw PolicyError(
                            path: path, line: lineNumber, column: fields[1].column, message: "not a file: \(target)")
                    }
                    try loadServiceFile(
                        target, service: service, argument: argument, base: base, depth: depth + 1, displayName: nil)
                    continue
                }
                rules.append(
                    try RuleParser.rule(
                        service: service, argument: argument, fields: fields, path: path,
                        origin: RuleOrigin(file: displayName ?? PolicyLoader.displayName(path), line: lineNumber)))
            }
        }

        /// `!compat-4.0`: the old per-service files, by service, then argument, the file without `+` last; after
        /// each argument-specific file, the implicit `@anyvm @anyvm deny` and `@anyvm @adminvm deny`.
        mutating func loadCompat(site: PolicyError, depth: Int) throws(PolicyError) {
            guard !stack.contains(where: { $0.hasPrefix(fileSystem.canonical(loader.compatDirectory) + "/") }) else {
                var error = site
                error.message = "!compat-4.0 is not recursive"
                throw error
            }
            let directory = loader.compatDirectory
            guard fileSystem.kind(of: directory) == .directory else { return }
            var entries: [(service: String, argument: String?, path: String)] = []
            for name in try fileSystem.list(directory) {
                guard !name.hasPrefix("."), !name.hasSuffix(".rpmsave"), !name.hasSuffix(".rpmnew"),
                    !name.hasSuffix(".swp"),
                    name.utf8.allSatisfy({ RuleParser.isServiceByte($0) || $0 == 0x2B }),
                    fileSystem.kind(of: directory + "/" + name) == .regular
                else { continue }
                if let plus = name.firstIndex(of: "+") {
                    entries.append(
                        (String(name[..<plus]), String(name[name.index(after: plus)...]), directory + "/" + name))
                } else {
                    entries.append((name, nil, directory + "/" + name))
                }
            }
            entries.sort { lhs, rhs in
                if lhs.service != rhs.service { return PolicyLoader.byteOrder(lhs.service, rhs.service) }
                switch (lhs.argument, rhs.argument) {
                case (nil, _): return false
                case (_, nil): return true
                case (let left?, let right?): return PolicyLoader.byteOrder(left, right)
                }
            }
            for entry in entries {
                guard !entry.service.isEmpty else { continue }
                try loadServiceFile(
                    entry.path, service: entry.service, argument: entry.argument, base: directory, depth: depth)
                if let argument = entry.argument {
                    let origin = RuleOrigin(file: "\(entry.service)+\(argument)", line: nil)
                    for target in [PolicyToken.anyVM, .adminVM] {
                        rules.append(
                            PolicyRule(
                                service: entry.service, argument: argument, source: .anyVM, target: target,
                                action: .deny(notify: true), origin: origin, path: entry.path))
                    }
                }
            }
        }
    }
}
