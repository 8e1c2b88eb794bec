import XCTest
@testable import NsyncServer

final class FileRequestTests: XCTestCase {
    func testOpenWriteSyncReadStatRenameRemoveOnThePool() throws {
        let directory = try LoopTestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let loop = try EventLoop()
        let path = directory + "/chunk.tmp"
        var log: [String] = []
        var failure: UVError?
        var readBack = IOBuffer(capacity: 0)
        let tail = IOBuffer(Array(repeating: 0xAB, count: 70_000))
        func fail(_ error: UVError?) -> Bool {
            if let error { failure = error }
            return error != nil
        }
        loop.openFile(atPath: path, flags: O_CREAT | O_RDWR | O_TRUNC, mode: 0o600) { result in
            let fd: Int32
            switch result {
            case .failure(let error): return failure = error
            case .success(let opened): fd = opened
            }
            XCTAssertTrue(loop.isOnLoopThread)
            loop.writeFile(fd, bytes: Array("head".utf8), at: 0) { error in
                if fail(error) { return }
                loop.writeFile(fd, from: tail, at: 100) { error in
                    if fail(error) { return }
                    loop.syncFile(fd) { error in
                        if fail(error) { return }
                        log.append("synced")
                        let buffer = IOBuffer(capacity: 100_000)
                        buffer.append([0xFF])   // reads land after the valid bytes
                        loop.readFile(fd, into: buffer, at: 0) { result in
                            XCTAssertEqual(try? result.get(), 70_100)
                            readBack = buffer
                            loop.statFile(fd) { result in
                                XCTAssertEqual(try? result.get().size, 70_100)
                                loop.closeFile(fd) { error in
                                    if fail(error) { return }
                                    log.append("closed")
                                }
                            }
                        }
                    }
                }
            }
        }
        loop.waitFor("the file round trip") { log.count == 2 || failure != nil }
        XCTAssertNil(failure)
        XCTAssertEqual(readBack.count, 70_101)
        XCTAssertEqual(Array(readBack.bytes.prefix(5)), [0xFF] + Array("head".utf8))
        XCTAssertEqual(readBack.bytes[5 ..< 101], ArraySlice(repeating: 0, count: 96))
        XCTAssertEqual(readBack.bytes.suffix(70_000), ArraySlice(repeating: 0xAB, count: 70_000))

        var stat: Result<FileStat, UVError>?
        loop.statFile(atPath: path) { stat = $0 }
        loop.waitFor("stat") { stat != nil }
        let info = try XCTUnwrap(try stat?.get())
        XCTAssertTrue(info.isRegularFile)
        XCTAssertEqual(info.permissions, 0o600)
        XCTAssertEqual(info.size, 70_100)

        var steps: [UVError?] = []
        loop.renameFile(from: path, to: directory + "/chunk") { error in
            steps.append(error)
            loop.removeFile(atPath: directory + "/chunk") { steps.append($0) }
        }
        loop.waitFor("rename and remove") { steps.count == 2 }
        XCTAssertEqual(steps.compactMap { $0 }, [])

        var missing: Result<FileStat, UVError>?
        loop.statFile(atPath: path) { missing = $0 }
        loop.waitFor("stat of a missing file") { missing != nil }
        XCTAssertThrowsError(try missing!.get()) { error in
            XCTAssertEqual((error as? UVError)?.isNotFound, true)
            XCTAssertEqual((error as? UVError)?.target, path)
        }
        loop.close()
    }
}
