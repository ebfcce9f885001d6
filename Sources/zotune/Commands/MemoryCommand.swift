import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// `zotune memory`: ledger peaks of an inference-only forward and of one ZO step of the chosen
/// optimizer on the same batch of random tokens (LM loss over all positions), and the analytic
/// FO-Adam footprint.
struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "memory", abstract: "ZO training memory vs inference and first-order Adam.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var shape: BatchShapeOptions
    @OptionGroup var optim: OptimizerChoice
    @OptionGroup(title: "Parameter-efficient tuning") var peftArguments: PEFTArguments
    @Option(help: "What to run: both (default), or only inference / zo (one phase per process, to compare process RSS).")
    var phase = "both"

    @Flag(help: "Print one JSON object.")
    var json = false

    func run() throws {
        guard ["both", "inference", "zo"].contains(phase) else { throw ValidationError("--phase must be both, inference or zo") }
        let run = try stepRun(model: model, peft: try peftArguments.config(), optimizer: optim.optimizer)
        let backend = try device.backend(quiet: json)
        let (file, storage, lm) = try run.loadModel(on: backend)
        let batch = try shape.tokens(model: lm.config)
        var inference = 0, zo = 0, state = 0
        // The inference reference is the plain base: measured before any adapter exists.
        if phase != "zo" {
            backend.ledger.resetPeaks()
            _ = try languageModelLoss(lm, batch)
            inference = backend.ledger.snapshot.total.peak
        }
        let adapter = try RunArgumentParsing.runConfigErrors { try run.makeAdapter(model: lm) }
        lm.hook = adapter
        let set = try run.trainableSet(model: lm, adapter: adapter)
        if phase != "inference" {
            let optimizer = try RunArgumentParsing.runConfigErrors { try run.makeOptimizer(model: lm, adapter: adapter) }
            state = optimizer.stateBytes
            backend.ledger.resetPeaks()
            _ = try optimizer.step(OptimizerBenchmark.context(model: lm, batch: batch, step: 0, lr: 0))
            zo = backend.ledger.snapshot.total.peak
        }
        let config = run.optimizer!
        let report = MemoryReport(zoPeakBytes: zo, inferencePeakBytes: inference,
                                  foAdamBytes: MemoryReport.foAdamBytes(config: lm.config, parameters: set.parameterCount, frozenBytes: adapter == nil ? 0 : lm.weights.bytes,
                                                                        batch: shape.batchSize, seqLen: shape.seqLen),
                                  weightBytes: lm.weights.bytes, optimizer: config.kind.rawValue, stateBytes: state)
        if json {
            var j = report.json
            j["batch_size"] = shape.batchSize; j["seq_len"] = shape.seqLen; j["peak_rss_bytes"] = peakRSSBytes()
            // The device allocator's own view (zeros and nulls on the CPU), beside the ledger.
            let a = backend.allocatorStats, mem = backend.deviceMemory
            j["allocator_live_bytes"] = a.live; j["allocator_cached_bytes"] = a.cached; j["library_bytes"] = a.library
            j["device_free_bytes"] = mem.map { $0.free } ?? NSNull(); j["device_total_bytes"] = mem.map { $0.total } ?? NSNull()
            let d = try JSONSerialization.data(withJSONObject: j, options: [.sortedKeys])
            print(String(decoding: d, as: UTF8.self))
        } else {
            print("\(file.path) (\(storage.dtypeName) storage, \(formatBytes(lm.weights.bytes)) of weights): batch \(shape.batchSize) × \(shape.seqLen) tokens, " +
                  "\(set.parameterCount) trainable parameters" + (adapter.map { " (\($0.config))" } ?? ""))
            print(report.table)
            if phase != "inference" { print(backend.ledger.table(title: "ledger during the \(config.kind.rawValue) step, per tag")) }
            print("process peak RSS \(formatBytes(peakRSSBytes()))")
            if let mem = backend.deviceMemory {
                let a = backend.allocatorStats
                print("\(backend.device) allocator: \(formatBytes(a.live)) live (rounded), \(formatBytes(a.cached)) cached, " +
                      "\(formatBytes(a.library)) library (cuBLAS workspace); driver: \(formatBytes(mem.total - mem.free)) of \(formatBytes(mem.total)) used")
            }
        }
    }
}

/// `zotune bench step`: one forward vs one step of the chosen optimizer on the same batch of random tokens.
struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "step", abstract: "Time one forward and one ZO step (LM loss over all positions).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var shape: BatchShapeOptions
    @OptionGroup var optim: OptimizerChoice
    @OptionGroup(title: "Parameter-efficient tuning") var peftArguments: PEFTArguments
    @Option(help: "Timed repetitions (median reported).")
    var repeats = 3
    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
    }

    func run() throws {
        let run = try stepRun(model: model, peft: try peftArguments.config(), optimizer: optim.optimizer)
        let backend = try device.backend(quiet: json)
        let (_, storage, lm) = try run.loadModel(on: backend)
        let batch = try shape.tokens(model: lm.config)
        // With --peft the forward timed is the adapted one (what a PEFT step runs twice).
        let adapter = try RunArgumentParsing.runConfigErrors { try run.makeAdapter(model: lm) }
        lm.hook = adapter
        let set = try run.trainableSet(model: lm, adapter: adapter)
        let base = try OptimizerBenchmark.baseline(model: lm, batch: batch, set: set, repeats: repeats)
        let optimizer = try RunArgumentParsing.runConfigErrors { try run.makeOptimizer(model: lm, adapter: adapter) }
        let r = try OptimizerBenchmark.measure(optimizer, config: run.optimizer!, model: lm, batch: batch, repeats: repeats, lr: 1e-7, baseline: base)
        if json {
            var j = r.json
            j["batch_size"] = shape.batchSize; j["seq_len"] = shape.seqLen; j["parameters"] = set.parameterCount
            j["device"] = backend.device.rawValue; j["dtype"] = storage.dtypeName; j["precision"] = lm.precision.rawValue
            print(String(decoding: try JSONSerialization.data(withJSONObject: j, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(backend.summary)
            print(String(format: "forward %.3f s, %@ step %.3f s: step / forward = %.3f (%.1f forwards + %.0f passes over %d parameters)",
                         r.forwardSeconds, r.optimizer, r.stepSeconds, r.stepOverForward, r.forwardsPerStep, r.passesPerStep, set.parameterCount))
        }
    }
}

/// `zotune bench optimizers`: every optimizer's step on one batch, against the same run's forward and pass.
struct BenchOptimizers: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "optimizers",
                                                    abstract: "Time a step of each ZO optimizer against forwards × forward + passes × pass, with memory.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup var shape: BatchShapeOptions
    @Option(help: "Comma-separated optimizers (default: all).")
    var optimizers: String?
    @Option(help: "Timed steps per optimizer (median reported).")
    var repeats = 3
    @Option(name: .customLong("ns-steps"), help: "Newton–Schulz iterations of zo-muon and jaguar-muon (default: theirs, 10).")
    var nsSteps: Int?
    @Option(name: .customLong("orthogonalize-every"), help: "jaguar-muon: NS every k steps (default 1).")
    var orthogonalizeEvery: Int?
    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1 (got \(repeats))") }
        // The same bounds as train's (OptimizerOptions).
        if let n = nsSteps, !(1...100).contains(n) { throw ValidationError("--ns-steps must be in 1…100 (got \(n))") }
        if let e = orthogonalizeEvery, e < 1 { throw ValidationError("--orthogonalize-every must be at least 1 (got \(e))") }
    }

    /// The optimizer's defaults with this command's NS overrides.
    func config(_ k: OptimizerKind) -> OptimizerConfig {
        let c = OptimizerConfig.defaults(k)
        if var o = c.options(ZOMuonOptions.self) {
            if let n = nsSteps { o.nsSteps = n }
            return .zoMuon(o)
        }
        if var o = c.options(JaguarMuonOptions.self) {
            if let n = nsSteps { o.nsSteps = n }
            if let e = orthogonalizeEvery { o.orthogonalizeEvery = e }
            return .jaguarMuon(o)
        }
        return c
    }

    func run() throws {
        let kinds = try (optimizers?.split(separator: ",").map(String.init) ?? OptimizerKind.allCases.map(\.rawValue)).map { name in
            guard let k = OptimizerKind(rawValue: name) else { throw ValidationError("unknown optimizer \(name)") }
            return k
        }
        let run = try stepRun(model: model, peft: nil, optimizer: "mezo")
        let backend = try device.backend(quiet: json)
        let (_, _, lm) = try run.loadModel(on: backend)
        let batch = try shape.tokens(model: lm.config)
        // One baseline for every row: a forward and a pass over every weight.
        let set = TrainableSet.full(lm)
        let base = try OptimizerBenchmark.baseline(model: lm, batch: batch, set: set, repeats: repeats)
        if !json {
            print(backend.summary)
            print(String(format: "batch %d × %d, %d parameters: forward %.3f s, pass over θ %.3f s (%.2f G el/s), NS GEMM %.1f GFLOP/s",
                         shape.batchSize, shape.seqLen, set.parameterCount, base.forward, base.pass, Double(set.parameterCount) / base.pass / 1e9,
                         base.gemmRate / 1e9))
            print("optimizer     fwd  passes  NS TFLOP   step s  step/fwd  step/predicted   state MiB  peak/inference")
        }
        var rows: [[String: Any]] = []
        for k in kinds {
            let config = config(k)
            let optimizer = try RunArgumentParsing.runConfigErrors { try TrainingRun.makeOptimizer(config, model: lm, adapter: nil, blocks: nil) }
            let r = try OptimizerBenchmark.measure(optimizer, config: config, model: lm, batch: batch, repeats: repeats, lr: 1e-7, baseline: base)
            rows.append(r.json)
            if !json {
                print(r.optimizer.padding(toLength: 12, withPad: " ", startingAt: 0) + String(format: " %4.1f %7.2f %9.3f %8.3f %9.3f %15.3f %11.1f %15.3f", r.forwardsPerStep, r.passesPerStep,
                             r.matrixFlopsPerStep / 1e12, r.stepSeconds, r.stepOverForward, r.stepOverPredicted, Double(r.stateBytes) / 1_048_576, r.peakOverInference))
            }
        }
        if json {
            let o: [String: Any] = ["batch_size": shape.batchSize, "seq_len": shape.seqLen, "parameters": set.parameterCount,
                                    "forward_s": base.forward, "pass_s": base.pass, "gemm_gflops": base.gemmRate / 1e9, "optimizers": rows]
            print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
        }
    }
}

/// The run whose step `memory` and `bench step` size or time: the model with its storage, the
/// adapter, and the optimizer with the defaults `train` gives it (ε and DiZO's layers by the
/// adapter). No data: the step runs on a batch of random tokens.
func stepRun(model: ModelOptions, peft: PEFTConfig?, optimizer: String) throws -> TrainingRun {
    var run = TrainingRun(model: model.model, task: "none")
    (run.dtype, run.precision, run.slidingWindow, run.peft) = (model.dtype, model.precision, model.slidingWindow, peft)
    run.optimizer = TrainingRun.defaultOptimizer(try optimizerKind(optimizer), peft: peft)
    try RunArgumentParsing.runConfigErrors { try run.validate() }
    return run
}
