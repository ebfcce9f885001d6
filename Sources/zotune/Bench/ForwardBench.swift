import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels

/// `zotune bench forward`: median time of a full forward (logits of every position) on random
/// tokens, tokens/s, and peak memory (ledger and process RSS).
struct BenchForward: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "forward", abstract: "Time a model forward on random tokens.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions

    @Option(name: .customLong("batch-size"), help: "Sequences per batch.")
    var batchSize = 16

    @Option(name: .customLong("seq-len"), help: "Tokens per sequence.")
    var seqLen = 64

    @Option(help: "Timed repetitions (median reported).")
    var repeats = 5

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        let backend = try device.backend(quiet: json)
        let file = try model.open()
        let lm = try file.load(on: backend, dtype: try model.weightDType())
        var state: UInt64 = 0x5EED
        let ids = (0..<(batchSize * seqLen)).map { _ -> Int32 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32((state >> 33) % UInt64(lm.config.vocabSize))
        }
        let batch = TokenBatch(ids: ids, mask: [UInt8](repeating: 1, count: ids.count), batch: batchSize, length: seqLen)
        backend.ledger.resetPeaks()
        let t = median(repeats) {
            _ = try? lm.allLogits(batch)
            backend.synchronize()
        }
        let tokensPerS = Double(batchSize * seqLen) / t
        let rss = peakRSSBytes()
        let ledgerPeak = backend.ledger.snapshot.total.peak
        if json {
            print("{\"forward_s\": \(jsonNumber(t)), \"tokens_per_s\": \(jsonNumber(tokensPerS)), \"batch_size\": \(batchSize), \"seq_len\": \(seqLen), \"threads\": \(CPUInfo.kernelThreads), \"peak_rss_bytes\": \(rss), \"ledger_peak_bytes\": \(ledgerPeak), \"device\": \"\(backend.device)\"}")
        } else {
            print(backend.summary)
            print(String(format: "forward %d × %d: %.3f s median of %d, %.0f tokens/s", batchSize, seqLen, t, repeats, tokensPerS))
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
