/// Reading done here before a fetch asks a holder: the blocks of the version
/// held here hashed (`Fetcher+Blocks`), that version copied as the start of
/// the new one (`Fetcher+Extend`), or a `.part` of an earlier run hashed to
/// be resumed. Files of many gigabytes take minutes, so the reading goes in
/// steps, one pool job each: the pool's other work (the raft log's flushes,
/// installs) goes between them, and `nsyncd status` shows how far it got.
/// Each step's state is handed to the pool and back whole. Loop thread
/// only, but for the steps.
extension Fetcher {
    /// Bytes read per step.
    static let preparationStep: UInt64 = 64 << 20

    /// What a transfer is doing here before it asks a holder (status).
    struct Preparation {
        enum Stage: String {
            case hashingBlocks = "hashing the blocks of the version held here"
            case copyingHeld = "copying the version held here"
            case resuming = "reading what an earlier run fetched"
            /// `hashAhead`: no transfer yet, the new version is being announced.
            case hashingAhead = "hashing the blocks of the version held here, for the new one being announced"
            /// `hashOwnBlocks`: this node's new version, for its fetchers.
            case hashingOwnBlocks = "hashing the blocks of the new version made here, for the nodes that fetch it"
        }

        var stage: Stage
        var done: UInt64 = 0
        var total: UInt64
        var startedAt: UInt64
    }

    /// A preparation's state between its steps: open files and how far it got.
    protocol PreparationState {
        /// Bytes read so far, of `total`.
        var done: UInt64 { get }
        var total: UInt64 { get }
        /// Closes what the state holds open (after a failed step).
        func close()
    }

    /// Runs `step` on the pool until it returns false (done) or throws,
    /// each time with the state the last one left; `finish` gets the
    /// result on the loop thread. A failed step's state is closed.
    func prepare<State: PreparationState>(_ transfer: Transfer, _ stage: Preparation.Stage, state: State,
                                          step: @escaping (inout State) throws -> Bool,
                                          finish: @escaping (Result<State, Error>) -> Void) {
        transfer.preparation = Preparation(stage: stage, total: state.total, startedAt: loop.now)
        preparing[ObjectIdentifier(transfer)] = transfer
        func run(_ state: State) {
            runStep(state, step) { [self] result in
                if stopped {
                    // Shutting down: no more steps, and no transfer to hand the files to.
                    if case .success((let state, _)) = result { state.close() }
                    return end(transfer)
                }
                switch result {
                case .success((let state, true)):
                    transfer.preparation?.done = state.done
                    transfer.preparation?.total = state.total
                    run(state)
                case .success((let state, false)):
                    end(transfer)
                    finish(.success(state))
                case .failure(let error):
                    end(transfer)
                    finish(.failure(error))
                }
            }
        }
        run(state)
    }

    /// Runs one `step` on the pool with `state`; `then` gets, on the loop,
    /// the state and whether more steps remain. A failed step's state is closed.
    func runStep<State: PreparationState>(_ state: State, _ step: @escaping (inout State) throws -> Bool,
                                          then: @escaping (Result<(State, Bool), Error>) -> Void) {
        loop.queueWork({ () -> Result<(State, Bool), Error> in
            var state = state
            do {
                let more = try step(&state)
                return .success((state, more))
            } catch {
                state.close()
                return .failure(error)
            }
        }, completion: then)
    }

    private func end(_ transfer: Transfer) {
        transfer.preparation = nil
        preparing[ObjectIdentifier(transfer)] = nil
    }
}
