import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// `zotune bench forward`: median time of a full forward (logits of every position) on random
/// tokens, tokens/s, and peak memory (ledger and process RSS).
struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forward", abstract: "Time a model forward on random tokens.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions

    @OptionGroup var shape: BatchShapeOptions

    @Option(help: "Timed repetitions (median reported).")
    var repeats = 5

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
    }

    func run() throws {
        let backend = try device.backend(quiet: json)
        let (file, lm) = try model.load(on: backend)
        let batch = try shape.tokens(model: lm.config)
        backend.ledger.resetPeaks()
        let t = try backend.medianSeconds(repeats) { _ = try lm.allLogits(batch) }
        let tokensPerS = Double(batch.tokenCount) / t
        let rss = peakRSSBytes()
        let ledgerPeak = backend.ledger.snapshot.total.peak
        if json {
            print("{\"forward_s\": \(jsonNumber(t)), \"tokens_per_s\": \(jsonNumber(tokensPerS)), \"batch_size\": \(shape.batchSize), \"seq_len\": \(shape.seqLen), \"threads\": \(CPUInfo.kernelThreads), \"peak_rss_bytes\": \(rss), \"ledger_peak_bytes\": \(ledgerPeak), \"device\": \"\(backend.device)\", \"dtype\": \"\(try model.storage(file, device: backend.device).dtypeName)\", \"precision\": \"\(lm.precision)\"}")
        } else {
            print(backend.summary)
            print(try model.storage(file, device: backend.device))
            print(String(format: "forward %d × %d: %.3f s median of %d, %.0f tokens/s", shape.batchSize, shape.seqLen, t, repeats, tokensPerS))
            print("peak RSS \(formatBytes(rss)); ledger peak \(formatBytes(ledgerPeak))")
            print(backend.ledger.table())
        }
    }
}

/// The process's peak resident set (getrusage; Linux reports KiB).
func peakRSSBytes() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024
}
