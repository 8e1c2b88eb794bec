import Foundation
@testable import NsyncServer
import XCTest

final class FileDescriptorTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "nsync-fd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileDescriptor.makeDirectories(root)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func testPositionalWritesAndReadsRoundTripAndSizeFollows() throws {
        let path = root + "/data"
        let fd = try FileDescriptor.open(path, .readWrite, options: [.create, .exclusive], permissions: 0o600)
        try fd.closeAfter {
            let bytes = (0..<100_000).map { UInt8(truncatingIfNeeded: $0) }
            try fd.write(all: bytes, at: 0)
            try fd.write(all: bytes[10..<20], at: 100_000)  // a slice, written at the end
            try fd.syncData()
            XCTAssertEqual(try fd.size(), 100_010)
            XCTAssertEqual(try fd.read(upToCount: 5, at: 99_998), [bytes[99_998], bytes[99_999], 10, 11, 12])
            XCTAssertEqual(try fd.read(upToCount: 50, at: 100_005).count, 5, "short only at end of file")
            XCTAssertEqual(try fd.readAll().count, 100_010)
            try fd.truncate(to: 3)
            try fd.sync()
            XCTAssertEqual(try fd.readAll(), [0, 1, 2])
        }
        XCTAssertThrowsError(try FileDescriptor.open(path, .readWrite, options: [.create, .exclusive])) { error in
            XCTAssertEqual((error as? SystemError)?.errno, EEXIST)
        }
    }

    func testAppendModeWritesAtTheEnd() throws {
        let path = root + "/appended"
        for word in ["one ", "two"] {
            let fd = try FileDescriptor.open(path, .writeOnly, options: [.create, .append])
            try fd.closeAfter { try fd.write(all: Array(word.utf8)) }
        }
        let fd = try FileDescriptor.open(path, .readOnly)
        XCTAssertEqual(String(decoding: try fd.closeAfter { try fd.readAll() }, as: UTF8.self), "one two")
    }

    func testErrorsNameTheOperationAndPath() {
        XCTAssertThrowsError(try FileDescriptor.open(root + "/missing", .readOnly)) { error in
            XCTAssertTrue((error as? SystemError)?.isNotFound ?? false)
            XCTAssertEqual("\(error)", "open \(root)/missing: No such file or directory")
        }
    }

    func testPathOperations() throws {
        try FileDescriptor.makeDirectories(root + "/a/b/c", permissions: 0o700)
        try FileDescriptor.makeDirectories(root + "/a/b/c")  // existing is fine
        XCTAssertTrue(FileDescriptor.isDirectory(root + "/a/b/c"))
        let file = root + "/a/f"
        let fd = try FileDescriptor.open(file, .writeOnly, options: .create)
        try fd.close()
        XCTAssertThrowsError(try FileDescriptor.makeDirectories(file + "/x")) { error in
            XCTAssertEqual((error as? SystemError)?.errno, ENOTDIR)
        }
        try FileDescriptor.rename(file, to: root + "/a/g")
        try FileDescriptor.syncDirectory(root + "/a")
        XCTAssertEqual(try FileDescriptor.listDirectory(root + "/a").sorted(), ["b", "g"])
        XCTAssertTrue(try FileDescriptor.removeIfPresent(root + "/a/g"))
        XCTAssertFalse(try FileDescriptor.removeIfPresent(root + "/a/g"))
        XCTAssertFalse(FileDescriptor.exists(root + "/a/g"))
        XCTAssertThrowsError(try FileDescriptor.unlink(root + "/a/g"))
    }

    func testLockFileIsExclusiveAndNamesItsHolder() throws {
        let path = root + "/lock"
        let lock = try LockFile(path: path)
        XCTAssertThrowsError(try LockFile(path: path)) { error in
            XCTAssertEqual(error as? LockFile.Failure, .held(path: path, holder: getpid()))
        }
        lock.release()
        let again = try LockFile(path: path)
        again.release()
    }
}
