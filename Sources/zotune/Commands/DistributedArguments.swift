import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneTraining

/// `--distributed`: data-parallel ZO over MPI (docs/distributed.md).
struct DistributedArguments: ParsableArguments {
    @Option(help: "Data parallelism: auto (MPI when launched by mpirun), mpi, or none.")
    var distributed = "auto"
    @Option(name: .customLong("check-replicas-every"), help: "With MPI: compare a hash of every replica's weights every N steps.")
    var checkReplicasEvery = 100

    /// The MPI world, or nil for a single-process run.
    func world() throws -> MPIWorld? {
        switch distributed {
        case "none": return nil
        case "auto": return MPIWorld.launchedByMPI ? try MPIWorld() : nil
        case "mpi": return try MPIWorld()
        default: throw ValidationError("--distributed must be auto, mpi or none (got \(distributed))")
        }
    }

    func validate() throws {
        guard ["auto", "mpi", "none"].contains(distributed) else { throw ValidationError("--distributed must be auto, mpi or none (got \(distributed))") }
        guard checkReplicasEvery >= 1 else { throw ValidationError("--check-replicas-every must be at least 1 (got \(checkReplicasEvery))") }
    }
}

/// A test hook (ZOTUNE_FAULT_CORRUPT_RANK=rank:step): that rank adds 1e-3 to one weight after that
/// step, so the replica check can be seen to stop the job. Never set outside tests.
func injectReplicaFault(_ trainer: Trainer, rank: Int) {
    guard let spec = ProcessInfo.processInfo.environment["ZOTUNE_FAULT_CORRUPT_RANK"],
          let r = Int(spec.split(separator: ":").first ?? ""), let step = Int(spec.split(separator: ":").last ?? ""), r == rank else { return }
    let check = trainer.afterStep
    let backend = trainer.model.backend
    trainer.afterStep = { done in
        if done == step, let e = trainer.set.entries.first(where: { $0.tensor.dtype == .f32 }) {
            var values = backend.toHost(e.tensor)
            values[0] += 1e-3
            values.withUnsafeBytes { backend.copy(e.tensor, fromHost: $0) }
        }
        try check?(done)
    }
}
