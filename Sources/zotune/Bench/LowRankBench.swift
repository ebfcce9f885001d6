import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneTraining

/// `zotune bench lowrank`: the batched low-rank two-sided step (docs/optimizers.md, "Batched
/// low-rank probes") against q sequential two-sided MeZO steps in the same run.
struct BenchLowRank: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lowrank",
                                                    abstract: "Time a batched q-direction low-rank step against q sequential MeZO steps, with memory.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var shape: BatchShapeOptions
    @Option(help: "Comma-separated direction counts q (2q members per forward).")
    var directions = "4,8"
    @Option(help: "Rank r of each direction A·Bᵀ/√r.")
    var rank = 1
    @Option(help: "Timed steps per configuration (median reported).")
    var repeats = 3
    @Flag(help: "Print one JSON object per line.")
    var json = false

    func counts() throws -> [Int] {
        try directions.split(separator: ",").map {
            guard let q = Int($0.trimmingCharacters(in: .whitespaces)), q >= 1, q <= 4096 else {
                throw ValidationError("--directions: \"\($0)\" is not a count in 1…4096")
            }
            return q
        }
    }

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        guard rank >= 1 else { throw ValidationError("--rank must be at least 1 (got \(rank))") }
        guard try !counts().isEmpty else { throw ValidationError("--directions lists no count") }
    }

    func run() throws {
        let backend = try device.backend(quiet: json)
        let (_, lm) = try model.load(on: backend)
        let batch = try shape.tokens(model: lm.config)
        let set = TrainableSet.full(lm)
        if !json { print(backend.summary) }
        for q in try counts() {
            let t = try LowRankProbeTiming.measure(model: lm, batch: batch, set: set, directions: q, rank: rank, repeats: repeats)
            if json {
                var j = t.json
                j["batch_size"] = shape.batchSize; j["seq_len"] = shape.seqLen; j["device"] = backend.device.rawValue
                print(String(decoding: try JSONSerialization.data(withJSONObject: j, options: [.sortedKeys]), as: UTF8.self))
            } else {
                print(String(format: "q %d r %d: batched step %.3f s, %d sequential MeZO steps %.3f s (%.2fx); forward %.3f s; peak %@ batched, %@ sequential, %@ inference",
                             q, rank, t.batchedSeconds, q, t.sequentialSeconds, t.speedup, t.forwardSeconds,
                             formatBytes(t.batchedPeakBytes), formatBytes(t.sequentialPeakBytes), formatBytes(t.inferencePeakBytes)))
            }
        }
    }
}
