@testable import NsyncServer

/// The simulation's clock: events ordered by time, then by insertion, so a
/// seed replays identically. A binary min-heap of plain keys; the events
/// themselves stay put in slots (moving them would retain and release their
/// payloads at every swap). Single-threaded test value.
struct SimulationEventQueue {
    private struct Key {
        let time: UInt64
        let order: UInt64
        let slot: Int
    }

    private var heap: [Key] = []
    private var slots: [RaftSimulation.Event?] = []
    private var freeSlots: [Int] = []
    private var order: UInt64 = 0

    mutating func push(_ time: UInt64, _ event: RaftSimulation.Event) {
        order += 1
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot] = event
        } else {
            slot = slots.count
            slots.append(event)
        }
        heap.append(Key(time: time, order: order, slot: slot))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (UInt64, RaftSimulation.Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            var smallest = left
            if left + 1 < heap.count && precedes(heap[left + 1], heap[left]) { smallest = left + 1 }
            guard precedes(heap[smallest], heap[parent]) else { break }
            heap.swapAt(smallest, parent)
            parent = smallest
        }
        let event = slots[top.slot]!
        slots[top.slot] = nil
        freeSlots.append(top.slot)
        return (top.time, event)
    }

    private func precedes(_ a: Key, _ b: Key) -> Bool {
        a.time < b.time || (a.time == b.time && a.order < b.order)
    }
}
