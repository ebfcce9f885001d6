import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// `zotune memory`: ledger peaks of an inference-only forward and of a MeZO step on the same
/// batch of random tokens (LM loss over all positions), and the analytic FO-Adam footprint.
struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory", abstract: "ZO training memory vs inference and first-order Adam.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var shape: BatchShapeOptions
    @Option(help: "What to run: both (default), or only inference / zo (one phase per process, to compare process RSS).")
    var phase = "both"

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        guard ["both", "inference", "zo"].contains(phase) else { throw ValidationError("--phase must be both, inference or zo") }
        let backend = try device.backend(quiet: json)
        let (file, lm) = try model.load(on: backend)
        let batch = shape.tokens(vocab: lm.config.vocabSize)
        var inference = 0, zo = 0
        if phase != "zo" {
            backend.ledger.resetPeaks()
            _ = try languageModelLoss(lm, batch)
            inference = backend.ledger.snapshot.total.peak
        }
        let set = TrainableSet.full(lm)
        if phase != "inference" {
            let mezo = MeZO(set: set, options: MeZOOptions(), backend: backend)
            backend.ledger.resetPeaks()
            _ = try mezo.step(0, runSeed: 1, lr: 0) { try languageModelLoss(lm, batch) }
            zo = backend.ledger.snapshot.total.peak
        }
        let report = MemoryReport(zoPeakBytes: zo, inferencePeakBytes: inference,
                                  foAdamBytes: MemoryReport.foAdamBytes(config: lm.config, parameters: set.parameterCount, batch: shape.batchSize, seqLen: shape.seqLen),
                                  weightBytes: lm.weights.bytes)
        if json {
            var j = report.json
            j["batch_size"] = shape.batchSize; j["seq_len"] = shape.seqLen; j["peak_rss_bytes"] = peakRSSBytes()
            let d = try JSONSerialization.data(withJSONObject: j, options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print("\(file.path): batch \(shape.batchSize) × \(shape.seqLen) tokens, \(set.parameterCount) parameters")
            print(report.table)
            print("process peak RSS \(formatBytes(peakRSSBytes()))")
        }
    }
}

/// `zotune bench step`: one forward vs one full MeZO step on the same batch of random tokens.
struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "step", abstract: "Time one forward and one MeZO step (LM loss over all positions).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var shape: BatchShapeOptions
    @Option(help: "Timed repetitions (median reported).")
    var repeats = 3
    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let backend = try device.backend(quiet: json)
        let (file, lm) = try model.load(on: backend)
        let batch = shape.tokens(vocab: lm.config.vocabSize)
        let mezo = MeZO(set: TrainableSet.full(lm), options: MeZOOptions(), backend: backend)
        let forward = median(repeats) { _ = try? languageModelLoss(lm, batch); backend.synchronize() }
        var t = 0
        let step = median(repeats) {
            _ = try? mezo.step(t, runSeed: 1, lr: 1e-7) { try languageModelLoss(lm, batch) }
            backend.synchronize()
            t += 1
        }
        if json {
            print("{\"forward_s\": \(jsonNumber(forward)), \"step_s\": \(jsonNumber(step)), \"step_over_forward\": \(jsonNumber(step / forward)), \"batch_size\": \(shape.batchSize), \"seq_len\": \(shape.seqLen), \"parameters\": \(mezo.set.parameterCount)}")
        } else {
            print(backend.summary)
            print(String(format: "forward %.3f s, MeZO step %.3f s: step / forward = %.3f (2 forwards + 3 passes over %d parameters)",
                         forward, step, step / forward, mezo.set.parameterCount))
        }
    }
}
