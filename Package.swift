// swift-tools-version: 6.0
// Sluice: a qrexec-style RPC framework for compartmentalized systems.
//
// Modules follow the pipeline in the order data flows (see docs/architecture.md):
// wire -> vchan -> policy -> registry -> daemon / agent -> client. A module never imports one downstream of it.
// C is sealed in three shim targets (CJansson, CXenVchan, CSluiceLinux); Swift above them sees typed wrappers.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Sluice",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SluiceWire", targets: ["SluiceWire"]),
        .library(name: "SluiceClient", targets: ["SluiceClient"]),
        .executable(name: "frame-demo", targets: ["FrameDemo"]),
        .executable(name: "sluice-example-echo", targets: ["ExampleEcho"]),
        .executable(name: "sluice-example-vault", targets: ["ExampleVault"]),
        .executable(name: "sluice-example-secret", targets: ["ExampleSecretClient"]),
        .executable(name: "sluice-example-socket-echo", targets: ["ExampleSocketEcho"]),
        .executable(name: "sluice-example-file-send", targets: ["ExampleFileSend"]),
        .executable(name: "sluice-example-file-receive", targets: ["ExampleFileReceive"]),
        .executable(name: "sluice-bench", targets: ["SluiceBench"]),
        .executable(name: "sluice-vchan-probe", targets: ["VchanProbe"]),
        .executable(name: "sluice-policy", targets: ["SluicePolicyTool"]),
        .executable(name: "sluiced", targets: ["SluiceDaemonTool"]),
        .executable(name: "sluice-agent", targets: ["SluiceAgentTool"]),
        .executable(name: "sluice-call", targets: ["SluiceCallTool"]),
        .executable(name: "sluice-host", targets: ["SluiceHostTool"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        // MARK: C shims (the only places C headers are included)
        .systemLibrary(name: "CJansson", pkgConfig: "jansson", providers: [.apt(["libjansson-dev"])]),
        .systemLibrary(name: "CXenVchan", pkgConfig: "xenvchan", providers: [.apt(["libxen-dev"])]),
        .target(name: "CSluiceLinux"),

        // MARK: The pure core
        .target(name: "SluiceWire", dependencies: ["CJansson"], swiftSettings: strict),
        // A pthread-mutex lock that ThreadSanitizer sees (docs/sanitizers.md).
        .target(name: "SluiceLocks", swiftSettings: strict),

        // MARK: The edges
        .target(
            name: "SluiceSystem",
            dependencies: ["CSluiceLinux", "SluiceWire", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "SluiceVchan",
            dependencies: [
                "SluiceWire", "SluiceSystem", "SluiceLocks", "CXenVchan", "CSluiceLinux",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(name: "SluicePolicy", dependencies: ["SluiceWire", "SluiceLocks"], swiftSettings: strict),
        // The call table: every call's state, who may move it on, and the limits (pure: no I/O, no clock).
        .target(name: "SluiceCalls", dependencies: ["SluiceWire"], swiftSettings: strict),
        .target(
            name: "SluiceRegistry",
            dependencies: [
                "SluiceWire", "SluiceSystem", "SluiceLocks", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceDaemon",
            dependencies: [
                "SluiceWire", "SluiceSystem", "SluiceVchan", "SluicePolicy", "SluiceCalls", "SluiceLocks",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceAgent",
            dependencies: [
                "SluiceWire", "SluiceSystem", "SluiceVchan", "SluiceRegistry", "SluiceLocks",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // sluice-host's process supervisor: the local broker, sluiced and one agent per domain, for development.
        .target(
            name: "SluiceHost",
            dependencies: [
                "SluiceDaemon", "SluiceWire", "SluiceSystem", "SluiceVchan", "SluicePolicy", "SluiceLocks",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The caller's side of a call, free of Foundation so that sluice-call can link statically.
        .target(
            name: "SluiceCaller", dependencies: ["SluiceWire", "SluiceSystem", "SluiceVchan"], swiftSettings: strict),
        .target(
            name: "SluiceClient",
            dependencies: ["SluiceCaller", "SluiceWire", "SluiceSystem", "SluiceVchan", "SluiceLocks"],
            swiftSettings: strict),
        .target(
            name: "SluiceTesting", dependencies: ["SluiceWire", "SluiceSystem", "SluiceVchan", "SluiceLocks"],
            swiftSettings: strict),

        // MARK: Programs, examples and benchmarks (thin wrappers over the libraries)
        .executableTarget(
            name: "FrameDemo",
            dependencies: ["SluiceWire", "SluiceSystem"],
            path: "Examples/FrameDemo",
            swiftSettings: strict
        ),
        .executableTarget(name: "ExampleEcho", path: "Examples/Echo/SwiftEcho", swiftSettings: strict),
        .target(name: "SplitSecretsProtocol", path: "Examples/SplitSecrets/Protocol", swiftSettings: strict),
        .executableTarget(
            name: "ExampleVault", dependencies: ["SplitSecretsProtocol"], path: "Examples/SplitSecrets/VaultService",
            swiftSettings: strict),
        .executableTarget(
            name: "ExampleSecretClient", dependencies: ["SluiceClient", "SplitSecretsProtocol"],
            path: "Examples/SplitSecrets/SecretClient", swiftSettings: strict),
        .executableTarget(name: "ExampleSocketEcho", path: "Examples/SocketService", swiftSettings: strict),
        .target(name: "FileCopyArchive", path: "Examples/FileCopy/Archive", swiftSettings: strict),
        .executableTarget(
            name: "ExampleFileSend", dependencies: ["FileCopyArchive", "SluiceClient"],
            path: "Examples/FileCopy/Sender",
            swiftSettings: strict),
        .executableTarget(
            name: "ExampleFileReceive", dependencies: ["FileCopyArchive"], path: "Examples/FileCopy/Receiver",
            swiftSettings: strict),
        .executableTarget(
            name: "SluicePolicyTool",
            dependencies: [
                "SluicePolicy", "SluiceWire", "SluiceSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SluiceDaemonTool",
            dependencies: [
                "SluiceDaemon", "SluiceCalls", "SluicePolicy", "SluiceSystem", "SluiceVchan",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SluiceAgentTool",
            dependencies: [
                "SluiceAgent", "SluiceRegistry", "SluiceSystem", "SluiceWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // sluice-call starts once per call: the Swift runtime is linked in statically, which saves most of its
        // start-up (docs/benchmarks.md).
        .executableTarget(
            name: "SluiceCallTool", dependencies: ["SluiceCaller", "SluiceSystem", "SluiceWire"], swiftSettings: strict,
            linkerSettings: [.unsafeFlags(["-static-stdlib"])]),
        .executableTarget(
            name: "SluiceHostTool",
            dependencies: [
                "SluiceHost", "SluiceDaemon", "SluicePolicy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "VchanProbe",
            dependencies: [
                "SluiceWire", "SluiceSystem", "SluiceVchan", "SluiceTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "SluiceBench",
            dependencies: [
                "SluiceWire", "SluiceSystem", "SluiceVchan", "SluiceTesting", "SluicePolicy", "SluiceRegistry",
                "SluiceClient", "SluiceLocks", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/SluiceBench",
            swiftSettings: strict
        ),

        // MARK: Tests (one target per module)
        .testTarget(name: "SluiceWireTests", dependencies: ["SluiceWire"], swiftSettings: strict),
        .testTarget(
            name: "SluiceCallsTests",
            dependencies: [
                "SluiceCalls", "SluiceWire", .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "SluiceRegistryTests",
            dependencies: [
                "SluiceRegistry", "SluiceSystem", "SluiceWire", "SluiceTesting",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceHostTests",
            dependencies: [
                "SluiceSystem", "SluiceWire", "SluiceTesting", "SluiceClient", "SluiceDaemon", "SluiceCalls",
                "FileCopyArchive",
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluicePolicyTests",
            dependencies: ["SluicePolicy", "SluiceWire", "SluiceSystem", "SluiceTesting"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceVchanTests",
            dependencies: [
                "SluiceVchan", "SluiceSystem", "SluiceWire", "SluiceTesting", "CXenVchan",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceSystemTests",
            dependencies: ["SluiceSystem", "SluiceWire", "SluiceTesting"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
