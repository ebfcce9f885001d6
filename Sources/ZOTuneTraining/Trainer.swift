import Foundation
import ZOTuneBackend
import ZOTuneModels

/// What the trainer reports after each step (for the progress line).
public struct StepReport: Sendable {
    public let step: Int          // completed steps
    public let total: Int
    public let loss: Double
    public let projectedGrad: Float
    public let lr: Float
    public let stepsPerSecond: Double
    public let peakBytes: Int
    public let devMetric: Double?
}

public struct TrainSummary: Sendable {
    public let devBefore: Double
    public let devAfter: Double
    public let bestStep: Int
    public let bestDev: Double
    public let test: Evaluation?
    public let steps: Int
    public let seconds: Double
}

/// The run stopped before its last step, its files saved at `completedSteps`: asked to by
/// `interrupt` (a signal) or by `stopAfter` (tests simulating a kill).
public struct RunInterrupted: Error {
    public var completedSteps = 0
}

/// The training loop over any `TrainingData` (a task, or a corpus for pre-training) for any ZO
/// optimizer: deterministic minibatches, dev evaluation and best-step tracking, the trajectory (header + records) and metrics written atomically,
/// resume and keep-best by replay from the base (no extra memory), NaN/Inf guard, loss plot.
/// The optimizer is known only through `ZOOptimizer`.
public final class Trainer: @unchecked Sendable {
    public let model: CausalLM
    public let data: any TrainingData
    public let options: RunOptions
    public let runDir: URL
    public let optimizer: any ZOOptimizer
    public var set: TrainableSet { optimizer.set }
    /// The PEFT adapter whose tensors the optimizer trains (installed as the model's hook), or nil: full tuning.
    public let adapter: (any PEFTAdapter)?
    var header: RunHeader
    var records: [ZORecord] = []
    var metrics: [String] = []
    var lastDev = 0.0
    /// Seconds spent in optimizer steps since the run began (evaluations and saves excluded),
    /// logged per step as `train_seconds` for loss-against-time comparisons.
    var trainSeconds = 0.0
    /// Highest ledger total seen during training steps (evaluations excluded): what the memory
    /// report compares with an inference-only forward of the same batch.
    public private(set) var stepPeakBytes = 0
    /// Highest ledger total of a single forward of a training minibatch (the first loss of each
    /// step, measured on its own), less the optimizer state: the inference-only footprint of the
    /// same batches.
    public private(set) var forwardPeakBytes = 0
    /// False on the replicas of a data-parallel run other than rank 0: they compute everything
    /// rank 0 does and write nothing.
    public var writesFiles = true
    /// Called after every step with the completed step count (a data-parallel run compares the
    /// replicas' θ here); throwing stops the run.
    public var afterStep: ((Int) throws -> Void)?

    /// A run on a task: its splits scored with the model and tokenizer.
    public convenience init(model: CausalLM, tokenizer: any Tokenizer, splits: TaskSplits, options: RunOptions, optimizer: any ZOOptimizer,
                            runDir: URL, base: BaseCheckpoint, adapter: (any PEFTAdapter)? = nil) throws {
        let data = try TaskData(splits: splits, scorer: Scorer(model: model, tokenizer: tokenizer, maxLength: options.maxLength),
                                batchSize: options.batchSize, dataSeed: options.dataSeed, evalCount: options.evalCount)
        try self.init(model: model, data: data, options: options, optimizer: optimizer, runDir: runDir, base: base, adapter: adapter)
    }

    public init(model: CausalLM, data: any TrainingData, options: RunOptions, optimizer: any ZOOptimizer,
                runDir: URL, base: BaseCheckpoint, adapter: (any PEFTAdapter)? = nil) throws {
        self.model = model
        self.data = data
        self.options = options
        self.runDir = runDir
        self.optimizer = optimizer
        self.adapter = adapter
        if let adapter { model.hook = adapter }
        header = RunHeader(run: options, optimizer: optimizer.config, base: base, trainable: optimizer.set.spec,
                           recordFields: optimizer.recordFields)
        if !optimizer.replayable { header.replayable = false }
        header.peft = adapter?.config
        header.blocks = (optimizer as? BlockwiseZO)?.options
    }

    public var trajectoryURL: URL { runDir.appendingPathComponent("trajectory.zot") }
    public var metricsURL: URL { runDir.appendingPathComponent("metrics.jsonl") }
    /// Optimizers that cannot replay (Zoop): the trainable tensors and optimizer state of the last
    /// save, and those of the best dev evaluation.
    public var weightsURL: URL { runDir.appendingPathComponent("trainable.safetensors") }
    public var bestWeightsURL: URL { runDir.appendingPathComponent("best.safetensors") }
    /// "accuracy", "f1" or "perplexity": what dev and test report.
    public var metricName: String { data.metricName }
    public func firstBatchShape() -> (sequences: Int, length: Int) { data.firstBatchShape() }

    /// Whether dev metric a beats b.
    func better(_ a: Double, _ b: Double) -> Bool { data.higherIsBetter ? a > b : a < b }

    // MARK: files

    func save(completed: Int) throws {
        header.progress.completedSteps = completed
        guard writesFiles else { return }
        try TrajectoryFile(header: header, records: records).write(to: trajectoryURL)
        // Weights after the trajectory: a kill between the two leaves the weights a save behind,
        // and resume redoes the steps from the weights' step (deterministic, same records).
        if !optimizer.replayable { try WeightSnapshot.write(optimizer, step: completed, to: weightsURL) }
        try AtomicFile.write(metrics.joined(separator: "\n") + (metrics.isEmpty ? "" : "\n"), to: metricsURL)
        try? AtomicFile.write(LossPlot.svg(metricsLines: metrics, title: "\(options.task): \(optimizer.config.kind.rawValue)"),
                              to: runDir.appendingPathComponent("loss.svg"))
    }

    /// One metrics.jsonl line. JSON has no infinity or NaN: such a value (a diverged run's
    /// perplexity) is written as null rather than losing the line.
    func log(_ fields: [String: Any]) {
        let clean = fields.mapValues { v -> Any in
            if let d = v as? Double, !d.isFinite { return NSNull() }
            return v
        }
        if let d = try? JSONSerialization.data(withJSONObject: clean, options: [.sortedKeys]) { metrics.append(String(decoding: d, as: UTF8.self)) }
    }

    // MARK: the loop

    /// Runs (or resumes) the loop. `stopAfter` simulates a kill after that many completed steps;
    /// `interrupt` is asked after every step (e.g. whether SIGINT arrived): true saves and stops.
    public func run(resume: Bool = false, stopAfter: Int? = nil, interrupt: () -> Bool = { false },
                    progress: (StepReport) -> Void = { _ in }) throws -> TrainSummary {
        try FileError.createDirectory(runDir)
        let started = Date()
        if resume && !FileManager.default.fileExists(atPath: trajectoryURL.path) {
            throw ModelError(file: runDir.path, field: "resume", "no run to resume here (no trajectory.zot); start one with --out \(runDir.path)")
        }
        let start = resume ? try resumeFromTrajectory() : try begin()
        var window: [Date] = []
        for t in start..<options.steps {
            let stepStart = Date()
            let (outcome, lr) = try step(t)
            trainSeconds += Date().timeIntervalSince(stepStart)
            let done = t + 1
            var fields: [String: Any] = ["step": done, "loss": outcome.loss, "g": Double(outcome.projectedGrad), "lr": Double(lr),
                                         "train_seconds": (trainSeconds * 1000).rounded() / 1000]
            let dev = try evaluateIfDue(completed: done)
            if let dev { fields["dev_\(metricName)"] = dev }
            log(fields)
            window.append(Date())
            if window.count > 10 { window.removeFirst() }
            let rate = window.count > 1 ? Double(window.count - 1) / window.last!.timeIntervalSince(window.first!) : 0
            progress(StepReport(step: done, total: options.steps, loss: outcome.loss, projectedGrad: outcome.projectedGrad,
                                lr: lr, stepsPerSecond: rate, peakBytes: model.backend.ledger.snapshot.total.peak, devMetric: dev))
            if done % max(1, options.saveEvery) == 0 || dev != nil || done == options.steps { try save(completed: done) }
            try afterStep?(done)
            if done < options.steps, interrupt() || stopAfter.map({ done >= $0 }) == true {
                try save(completed: done)
                throw RunInterrupted(completedSteps: done)
            }
        }
        if options.evalEvery <= 0 {
            lastDev = try data.evaluateDev()
            if better(lastDev, header.progress.bestDev) { (header.progress.bestStep, header.progress.bestDev) = (options.steps, lastDev) }
            log(["step": options.steps, "dev_\(metricName)": lastDev])
        }
        try keepBest()
        let test = try data.evaluateTest()
        if let test { log(["step": options.steps, "test_\(metricName)": test.metric, "best_step": header.progress.bestStep]) }
        try save(completed: options.steps)
        return TrainSummary(devBefore: header.progress.devBefore, devAfter: lastDev, bestStep: header.progress.bestStep,
                            bestDev: header.progress.bestDev, test: test, steps: options.steps, seconds: Date().timeIntervalSince(started))
    }

    /// Records that the run's ending (test evaluation, export, summary) is written: resuming it
    /// again changes nothing.
    public func markFinished() throws {
        header.progress.finished = true
        guard writesFiles else { return }
        try TrajectoryFile(header: header, records: records).write(to: trajectoryURL)
    }

    /// What the run is on beyond RunOptions (data options and a hash of the examples); set before
    /// `run`: a resume over other data is refused.
    public var dataFingerprint: DataFingerprint? {
        get { header.data }
        set { header.data = newValue }
    }

    /// A new run: dev metric of the base, then the empty trajectory. Returns the first step.
    func begin() throws -> Int {
        let dev = try data.evaluateDev()
        header.progress.devBefore = dev
        (header.progress.bestStep, header.progress.bestDev) = (0, dev)
        lastDev = dev
        log(["step": 0, "dev_\(metricName)": dev])
        try save(completed: 0)
        return 0
    }

    /// Continues the run saved in the run directory: the same options, optimizer and base are
    /// required; θ and the optimizer state of the last saved step are rebuilt by replaying its
    /// records (no forwards, bit-identical). Returns the first step still to run.
    func resumeFromTrajectory() throws -> Int {
        let saved = try TrajectoryFile.read(trajectoryURL)
        if let mismatch = saved.header.resumeMismatch(header, file: trajectoryURL.path) { throw mismatch }
        var start = saved.header.progress.completedSteps
        header.progress = saved.header.progress
        lastDev = header.progress.bestDev
        if optimizer.replayable {
            records = saved.records.filter { Int($0.step) < start }
            optimizer.replay(records)
        } else if FileManager.default.fileExists(atPath: weightsURL.path) {
            start = try WeightSnapshot.load(optimizer, from: weightsURL)
            header.progress.completedSteps = start
            records = saved.records.filter { Int($0.step) < start }
        } else if start > 0 {
            throw ModelError(file: weightsURL.path, field: "file", "missing: \(optimizer.config.kind.rawValue) steps cannot be replayed from the trajectory, and the weights of step \(start) were not saved")
        }
        if let text = try? String(contentsOf: metricsURL, encoding: .utf8) {
            metrics = text.split(separator: "\n").map(String.init).filter { line in
                guard let d = line.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                      let s = o["step"] as? Int else { return false }
                if s <= start, let seconds = o["train_seconds"] as? Double { trainSeconds = seconds }
                // The ending's lines (the final dev evaluation of a run without --eval-every, the
                // test line) are written again when the ending runs again.
                let ending = o["loss"] == nil && s == options.steps && (options.evalEvery <= 0 || o.keys.contains { $0.hasPrefix("test_") })
                return s <= start && !ending
            }
        }
        return start
    }

    /// One optimizer step on minibatch t. On a non-finite loss the files are saved at the last
    /// good step before the error propagates.
    func step(_ t: Int) throws -> (StepOutcome, Float) {
        let lr = options.schedule.lr(at: t)
        let ledger = model.backend.ledger
        ledger.resetPeaks()
        var calls = 0
        // The first forward of each step is measured on its own; the optimizer's state is
        // allocated already, and an inference-only process would not hold it.
        func measured<T>(_ body: () throws -> T) rethrows -> T {
            let out = try body()
            calls += 1
            if calls == 1 { forwardPeakBytes = max(forwardPeakBytes, ledger.snapshot.total.peak - optimizer.stateBytes) }
            return out
        }
        let objective = options.objective
        let context = StepContext(
            step: t, runSeed: options.seed, lr: lr,
            loss: { try measured { try self.data.loss(step: t, objective: objective) } },
            searchLoss: { j in try self.data.searchLoss(j, objective: objective) },
            scoreSamples: { try self.data.scoreSamples(step: t, objective: objective) },
            lowRankProbe: { probe, seed in
                // Pre-training: the step's corpus windows.
                if let corpus = self.data as? CorpusData { return try corpus.lowRankProbe(probe, seed: seed, step: t) }
                guard let task = self.data as? TaskData else {
                    throw BackendError("low-rank probes score a task's minibatches; this run's data is not a task")
                }
                return try probe.probe(seed: seed, examples: task.minibatch(t), scorer: task.scorer, objective: objective)
            })
        let outcome: StepOutcome
        do {
            outcome = try optimizer.step(context)
        } catch let e as NonFiniteLoss {
            try save(completed: t)
            throw e
        }
        // The update's kernels ran after the last loss was read: a failed one (named) ends the run
        // here, before its record or weights are saved.
        try model.backend.checkErrors()
        records += outcome.records
        stepPeakBytes = max(stepPeakBytes, ledger.snapshot.total.peak)
        if forwardPeakBytes == 0 {
            // The optimizer scored no plain forward (Zoop): measure one for the inference reference.
            ledger.resetPeaks()
            _ = try measured { try data.loss(step: t, objective: objective) }
        }
        return (outcome, lr)
    }

    /// The dev metric when an evaluation is due after `completed` steps (nil otherwise); updates the best.
    func evaluateIfDue(completed: Int) throws -> Double? {
        guard options.evalEvery > 0 && (completed % options.evalEvery == 0 || completed == options.steps) else { return nil }
        let dev = try data.evaluateDev()
        lastDev = dev
        if better(dev, header.progress.bestDev) {
            (header.progress.bestStep, header.progress.bestDev) = (completed, dev)
            if !optimizer.replayable && options.keepBest { try WeightSnapshot.write(optimizer, step: completed, to: bestWeightsURL) }
        }
        return dev
    }

    /// Ends on the best dev step's weights: back to the base and its state, replay up to that step.
    func keepBest() throws {
        if !options.keepBest { (header.progress.bestStep, header.progress.bestDev) = (options.steps, lastDev) }
        guard header.progress.bestStep != options.steps else { return }
        if let adapter { try adapter.reset() } else { try model.reloadWeights() }
        optimizer.resetState()
        if optimizer.replayable {
            optimizer.replay(records.filter { Int($0.step) < header.progress.bestStep })
        } else if header.progress.bestStep > 0 {
            _ = try WeightSnapshot.load(optimizer, from: bestWeightsURL)
        }
    }
}
