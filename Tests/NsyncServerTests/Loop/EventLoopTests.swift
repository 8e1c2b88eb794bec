import CLibUV
import XCTest
@testable import NsyncServer

final class EventLoopTests: XCTestCase {
    func testTimersFireInDueOrderAndRepeatingTimerRepeats() throws {
        let loop = try EventLoop()
        var fired: [String] = []
        let late = LoopTimer(loop: loop)
        let early = LoopTimer(loop: loop)
        let soon = LoopTimer(loop: loop)
        late.start(after: 30) { fired.append("late") }
        early.start(after: 10) { fired.append("early") }
        soon.start(after: 0) { fired.append("soon") }
        var ticks = 0
        let repeating = LoopTimer(loop: loop)
        repeating.start(after: 1, repeating: 1) {
            ticks += 1
            if ticks == 5 { repeating.stop() }
        }
        loop.waitFor("three timers and five ticks") { fired.count == 3 && ticks == 5 }
        XCTAssertEqual(fired, ["soon", "early", "late"])
        XCTAssertFalse(repeating.isActive)
        XCTAssertEqual(ticks, 5)
        XCTAssertEqual(loop.liveHandleCount, 4)
        loop.close()
        XCTAssertEqual(loop.liveHandleCount, 0)
    }

    func testScheduledOneShotFiresOnceAndReleasesItsTimer() throws {
        let loop = try EventLoop()
        var count = 0
        let timer = WeakBox(loop.schedule(after: 1) { count += 1 })
        let canceled = loop.schedule(after: 1) { XCTFail("a closed timer must not fire") }
        canceled.close()
        loop.waitFor("the one-shot") { count == 1 && loop.liveHandleCount == 0 }
        XCTAssertNil(timer.value, "a fired one-shot timer is released")
        loop.run(until: { false }, timeout: 20)
        XCTAssertEqual(count, 1)
        loop.close()
    }

    /// Work done a slice per turn with `nextTurn` lets a repeating timer (the
    /// Raft tick) fire between slices; a 0 ms timer chained from a timer
    /// callback runs every slice in one pass of libuv's timers.
    func testSlicesChainedWithNextTurnLetARepeatingTimerFireBetweenThem() throws {
        func ticksDuring(_ chain: @escaping (EventLoop, @escaping () -> Void) -> Void) throws -> Int {
            let loop = try EventLoop()
            defer { loop.close() }
            var ticks = 0
            let tick = LoopTimer(loop: loop)
            tick.start(after: 5, repeating: 5) { ticks += 1 }
            var slices = 0
            var ticksWhenDone: Int?
            func slice() {
                let start = monotonicNanoseconds()
                while monotonicNanoseconds() - start < 1_000_000 {} // 1 ms of work
                slices += 1
                if slices == 150 { ticksWhenDone = ticks } else { chain(loop, slice) }
            }
            _ = loop.schedule(after: 0) { slice() }
            loop.waitFor("150 slices", timeout: 10_000) { ticksWhenDone != nil }
            return ticksWhenDone ?? -1
        }
        let byNextTurn = try ticksDuring { loop, next in loop.nextTurn(next) }
        XCTAssertGreaterThanOrEqual(byNextTurn, 10, "150 ms of slices: a 5 ms tick fires between them")
        if uv_version() < 0x01_2D_00 {
            // libuv 1.45 collects the due timers before running any; before it,
            // this is why nextTurn exists: a chained 0 ms timer starves the tick.
            let byZeroTimer = try ticksDuring { loop, next in loop.schedule(after: 0, next) }
            XCTAssertLessThanOrEqual(byZeroTimer, 1, "libuv \(String(cString: uv_version_string()))")
        }
    }

    func testPoolThreadsRunBelowTheLoopThreadsPriority() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let loopNice = nsync_thread_nice()
        var poolNice: Int32?
        loop.queueWork({ () -> Int32 in
            nsync_thread_nice()
        }, completion: { poolNice = $0 })
        loop.waitFor("the work item") { poolNice != nil }
        XCTAssertEqual(poolNice, min(19, loopNice + EventLoop.poolNiceIncrement))
    }

    func testRunUntilGivesUpAtTheTimeout() throws {
        let loop = try EventLoop()
        let start = loop.now
        XCTAssertFalse(loop.run(until: { false }, timeout: 50))
        XCTAssertGreaterThanOrEqual(loop.now - start, 50)
        loop.close()
    }

    func testExecuteFromOtherThreadsRunsEveryItemOnTheLoopThreadInOrder() throws {
        let loop = try EventLoop()
        let perThread = 2_000
        var seen: [Int: [Int]] = [:]   // loop thread only
        var offLoop = 0
        let finished = DispatchSemaphore(value: 0)
        let loopThread = Thread {
            loop.run()
            finished.signal()
        }
        loopThread.start()
        let running = DispatchSemaphore(value: 0)
        loop.execute { running.signal() }
        XCTAssertEqual(running.wait(timeout: .now() + 10), .success, "loop thread did not start")
        XCTAssertFalse(loop.isOnLoopThread, "the running thread is the loop thread now")
        DispatchQueue.concurrentPerform(iterations: 2) { producer in
            for i in 0..<perThread {
                XCTAssertTrue(loop.execute {
                    if !loop.isOnLoopThread { offLoop += 1 }
                    seen[producer, default: []].append(i)
                })
            }
        }
        loop.execute { loop.stop() }
        XCTAssertEqual(finished.wait(timeout: .now() + 10), .success, "loop thread did not stop")
        XCTAssertEqual(offLoop, 0)
        XCTAssertEqual(seen[0], Array(0..<perThread))
        XCTAssertEqual(seen[1], Array(0..<perThread))
        loop.close()
        XCTAssertFalse(loop.execute {}, "a closed loop refuses work")
    }

    func testCloseRunsWorkAlreadyAcceptedByExecute() throws {
        let loop = try EventLoop()
        var ran = false
        loop.execute { ran = true }
        loop.close()
        XCTAssertTrue(ran)
    }

    func testQueueWorkRunsOnThePoolAndCompletesOnTheLoopThread() throws {
        let loop = try EventLoop()
        var results: [Int] = []
        var completionOnLoop = true
        for n in 1...8 {
            loop.queueWork({ () -> (Int, Bool) in
                (n * n, loop.isOnLoopThread)
            }, completion: { square, workWasOnLoop in
                XCTAssertFalse(workWasOnLoop, "work must run on a pool thread")
                completionOnLoop = completionOnLoop && loop.isOnLoopThread
                results.append(square)
            })
        }
        loop.waitFor("eight work items") { results.count == 8 }
        XCTAssertTrue(completionOnLoop)
        XCTAssertEqual(results.sorted(), (1...8).map { $0 * $0 })
        loop.close()
    }

    func testCloseClosesOpenHandlesAndReleasesThem() throws {
        let loop = try EventLoop()
        var weak: [WeakBox<Handle>] = []
        do {
            let timer = LoopTimer(loop: loop)
            // The callback captures its own timer: the cycle is broken at close.
            timer.start(after: 60_000) { timer.stop() }
            let listener = TCPListener(loop: loop)
            try listener.bind(host: "127.0.0.1", port: 0)
            try listener.listen { _ in }
            weak = [WeakBox(timer), WeakBox(listener)]
        }
        XCTAssertNotNil(weak[0].value, "an open handle keeps itself alive")
        XCTAssertEqual(loop.liveHandleCount, 2)
        loop.close()
        XCTAssertEqual(loop.liveHandleCount, 0)
        XCTAssertTrue(weak.allSatisfy { $0.value == nil }, "closed handles are released")
    }

    func testSignalWatcherDeliversTheSignalOnTheLoop() throws {
        let loop = try EventLoop()
        let watcher = try SignalWatcher(loop: loop)
        var received: [Int32] = []
        try watcher.start(signal: SIGUSR1) { received.append($0) }
        raise(SIGUSR1)
        loop.waitFor("SIGUSR1") { received == [SIGUSR1] }
        watcher.close()
        loop.close()
    }

    func testPollReportsAReadablePipe() throws {
        let loop = try EventLoop()
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        defer { close(fds[0]); close(fds[1]) }
        let poll = try Poll(loop: loop, fd: fds[0])
        var got: [UInt8] = []
        try poll.start(.readable) { result in
            guard case .success(let events) = result, events.contains(.readable) else { return XCTFail("\(result)") }
            var byte: UInt8 = 0
            if read(fds[0], &byte, 1) == 1 { got.append(byte) }
        }
        loop.run(until: { false }, timeout: 20)
        XCTAssertEqual(got, [], "nothing is readable yet")
        var byte: UInt8 = 42
        XCTAssertEqual(write(fds[1], &byte, 1), 1)
        loop.waitFor("the byte") { got == [42] }
        poll.close()
        loop.close()
        XCTAssertEqual(loop.liveHandleCount, 0)
    }

    func testPollRefusesARegularFile() throws {
        let loop = try EventLoop()
        let fd = open("/proc/self/exe", O_RDONLY)
        defer { close(fd) }
        XCTAssertThrowsError(try Poll(loop: loop, fd: fd)) { error in
            XCTAssertTrue("\(error)".contains("uv_poll_init"), "\(error)")
        }
        XCTAssertEqual(loop.liveHandleCount, 0)
        loop.close()
    }

    func testUVErrorNamesOperationTargetAndReason() {
        let error = UVError(code: -EADDRINUSE, operation: "bind", target: "0.0.0.0:7000")
        XCTAssertTrue(error.isAddressInUse)
        XCTAssertEqual(error.description, "bind 0.0.0.0:7000: address already in use (EADDRINUSE)")
        XCTAssertThrowsError(try uvCheck(-ENOSPC, "write")) { XCTAssertTrue(($0 as! UVError).isNoSpace) }
        XCTAssertEqual(try uvCheck(3, "read"), 3)
    }
}

final class EventLoopLifetimeTests: XCTestCase {
    func testALoopDroppedWithoutCloseIsReleased() throws {
        var weak: WeakBox<EventLoop>?
        do {
            let loop = try EventLoop()
            loop.execute {}
            XCTAssertTrue(loop.run(until: { true }, timeout: 10))
            weak = WeakBox(loop)
        }
        XCTAssertNil(weak?.value)
    }
}
