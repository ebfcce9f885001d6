import Foundation
import ZOTuneBackend

extension MPIWorld: ScoreExchange {}

/// Data-parallel ZO over MPI (docs/distributed.md): every rank holds a full replica and applies
/// the same update; the micro-batches of each forward are shared out and their scores gathered
/// (Scorer.exchange), rank 0 alone writes the run directory, and every `checkEvery` steps the
/// replicas compare a hash of θ.
public struct DataParallel {
    public let world: MPIWorld
    public let checkEvery: Int

    public init(world: MPIWorld, checkEvery: Int) {
        self.world = world
        self.checkEvery = checkEvery
    }

    /// Wires a trainer for this world.
    public func attach(_ trainer: Trainer) {
        (trainer.data as? TaskData)?.scorer.exchange = world
        trainer.writesFiles = world.rank == 0
        let set = trainer.set, backend = trainer.model.backend, world = self.world, every = max(1, checkEvery)
        trainer.afterStep = { done in
            guard done % every == 0 || done == trainer.options.steps else { return }
            let hashes = world.allgather(set.contentHash(backend))
            if let bad = hashes.indices.first(where: { hashes[$0] != hashes[0] }) {
                throw ReplicaDivergence(step: done, rank: bad, hashes: hashes)
            }
        }
    }

    /// Whether any rank asks to stop (a signal reaches ranks at different moments; all stop
    /// after the same step).
    public func anyRank(_ flag: Bool) -> Bool { world.allgather([flag ? 1 : 0]).contains { $0[0] != 0 } }
}

/// The replicas' weights differ: a data-parallel run must not continue from here.
public struct ReplicaDivergence: Error, CustomStringConvertible {
    public let step: Int
    public let rank: Int
    public let hashes: [UInt64]
    public var description: String {
        "after step \(step) rank \(rank)'s weights differ from rank 0's (θ hashes \(hashes.map { String(format: "%016llx", $0) }.joined(separator: ", "))); " +
        "the replicas must stay identical — check that every rank runs the same build, model file and options"
    }
}
