// swift-tools-version:6.0
// nsyncd: a Raft-replicated, TLS-secured directory sync daemon on one libuv loop.
//
// Language mode 5: the core is confined to one libuv loop thread by design
// (DESIGN.md, "Threads") and reaches C callbacks through Unmanaged pointers;
// Swift 6's Sendable checking cannot see that confinement, so we state it in
// doc comments instead of papering over it with @unchecked annotations.
import PackageDescription

let package = Package(
    name: "nsyncd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "nsyncd", targets: ["nsyncd"]),
        .library(name: "NsyncServer", targets: ["NsyncServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibUV",
            pkgConfig: "libuv",
            providers: [.apt(["libuv1-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "NsyncServer",
            dependencies: [
                "CLibUV",
                "COpenSSL",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Collections", package: "swift-collections"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "nsyncd",
            dependencies: [
                "NsyncServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "NsyncServerTests",
            dependencies: ["NsyncServer"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
