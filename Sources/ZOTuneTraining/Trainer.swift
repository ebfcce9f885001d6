import Foundation
import ZOTuneBackend
import ZOTuneModels

/// Everything that defines a run; stored in the run directory and the trajectory header.
public struct TrainOptions: Sendable, Equatable {
    public var task: String
    public var steps: Int
    public var batchSize: Int
    public var schedule: StepSchedule
    public var mezo: MeZOOptions
    public var objective: ObjectiveKind
    public var evalEvery: Int
    /// Dev examples per evaluation (nil: the whole dev split).
    public var evalCount: Int?
    public var seed: UInt64
    public var dataSeed: UInt64
    public var saveEvery: Int
    public var maxLength: Int
    /// End on the weights of the best dev evaluation (replayed from the base) instead of the last step.
    public var keepBest: Bool

    public init(task: String, steps: Int, batchSize: Int = 16, lr: Float = 1e-6, schedule: LRSchedule = .constant,
                warmupSteps: Int = 0, mezo: MeZOOptions = MeZOOptions(), objective: ObjectiveKind = .crossEntropy,
                evalEvery: Int = 0, evalCount: Int? = nil, seed: UInt64 = 0, dataSeed: UInt64 = 0, saveEvery: Int = 10,
                maxLength: Int = 256, keepBest: Bool = true) {
        self.task = task
        self.steps = steps
        self.batchSize = batchSize
        self.schedule = StepSchedule(lr: lr, kind: schedule, warmupSteps: warmupSteps, totalSteps: steps)
        self.mezo = mezo
        self.objective = objective
        self.evalEvery = evalEvery
        self.evalCount = evalCount
        self.seed = seed
        self.dataSeed = dataSeed
        self.saveEvery = saveEvery
        self.maxLength = maxLength
        self.keepBest = keepBest
    }

    var header: [String: Any] {
        var h: [String: Any] = [
            "optimizer": "mezo", "task": task, "steps": steps, "batch_size": batchSize, "lr": Double(schedule.lr),
            "schedule": schedule.kind.rawValue, "warmup_steps": schedule.warmupSteps, "eps": Double(mezo.eps),
            "weight_decay": Double(mezo.weightDecay), "directions": mezo.directions, "one_sided": mezo.oneSided,
            "objective": objective.rawValue, "eval_every": evalEvery, "seed": String(seed), "data_seed": String(dataSeed),
            "save_every": saveEvery, "max_length": maxLength, "keep_best": keepBest,
        ]
        if let evalCount { h["eval_count"] = evalCount }
        return h
    }

    /// Options back from a trajectory header (resume, replay).
    public static func from(header h: [String: Any], file: String) throws -> TrainOptions {
        func num(_ k: String) throws -> Double {
            guard let v = h[k] as? NSNumber else { throw ModelError(file: file, field: k, "missing or not a number") }
            return v.doubleValue
        }
        func str(_ k: String) throws -> String {
            guard let v = h[k] as? String else { throw ModelError(file: file, field: k, "missing or not a string") }
            return v
        }
        guard let schedule = LRSchedule(rawValue: try str("schedule")) else { throw ModelError(file: file, field: "schedule", "unknown") }
        guard let objective = ObjectiveKind(rawValue: try str("objective")) else { throw ModelError(file: file, field: "objective", "unknown") }
        guard let seed = UInt64(try str("seed")), let dataSeed = UInt64(try str("data_seed")) else {
            throw ModelError(file: file, field: "seed", "not an unsigned integer")
        }
        return TrainOptions(task: try str("task"), steps: Int(try num("steps")), batchSize: Int(try num("batch_size")),
                            lr: Float(try num("lr")), schedule: schedule, warmupSteps: Int(try num("warmup_steps")),
                            mezo: MeZOOptions(eps: Float(try num("eps")), weightDecay: Float(try num("weight_decay")),
                                              directions: Int(try num("directions")), oneSided: (h["one_sided"] as? Bool) ?? false),
                            objective: objective, evalEvery: Int(try num("eval_every")),
                            evalCount: (h["eval_count"] as? NSNumber)?.intValue, seed: seed, dataSeed: dataSeed,
                            saveEvery: Int(try num("save_every")), maxLength: Int(try num("max_length")),
                            keepBest: (h["keep_best"] as? Bool) ?? true)
    }
}

/// What the trainer reports after each step (for the progress line).
public struct StepReport: Sendable {
    public let step: Int          // completed steps
    public let total: Int
    public let loss: Double
    public let projectedGrad: Float
    public let lr: Float
    public let stepsPerSecond: Double
    public let peakBytes: Int
    public let devAccuracy: Double?
}

public struct TrainSummary: Sendable {
    public let devBefore: Double
    public let devAfter: Double
    public let bestStep: Int
    public let bestDev: Double
    public let test: Double?
    public let steps: Int
    public let seconds: Double
}

/// Raised by `stopAfter` (tests): the run stopped as if killed, its files saved.
public struct RunInterrupted: Error {}

/// The MeZO training loop over a task: deterministic minibatches derived from the step index,
/// dev evaluation and best-step tracking, trajectory + state checkpoints written atomically,
/// resume by replay, NaN/Inf guard, metrics.jsonl and an SVG plot.
public final class Trainer: @unchecked Sendable {
    public let model: CausalLM
    public let scorer: Scorer
    public let splits: TaskSplits
    public let options: TrainOptions
    public let runDir: URL
    public let set: TrainableSet
    let optimizer: MeZO
    let baseHeader: [String: Any]
    var records: [ZORecord] = []
    var metrics: [String] = []
    var best: (step: Int, dev: Double) = (0, -1)
    var devBefore = 0.0
    /// Highest ledger total seen during training steps (evaluations excluded): what the memory
    /// report compares with an inference-only forward of the same batch.
    public private(set) var stepPeakBytes = 0
    /// Highest ledger total of a single forward of a training minibatch (the first loss of each
    /// step, measured on its own): the inference-only footprint of the same batches.
    public private(set) var forwardPeakBytes = 0

    public init(model: CausalLM, tokenizer: any Tokenizer, splits: TaskSplits, options: TrainOptions, runDir: URL,
                base: [String: Any]) throws {
        self.model = model
        self.splits = splits
        self.options = options
        self.runDir = runDir
        scorer = Scorer(model: model, tokenizer: tokenizer, maxLength: options.maxLength)
        set = TrainableSet.full(model)
        optimizer = MeZO(set: set, options: options.mezo, backend: model.backend)
        baseHeader = base
        guard !splits.train.isEmpty else { throw ModelError(file: splits.task, field: "train", "no training examples") }
    }

    public var trajectoryURL: URL { runDir.appendingPathComponent("trajectory.zot") }
    public var metricsURL: URL { runDir.appendingPathComponent("metrics.jsonl") }

    /// Minibatch of step t: consecutive slices of a per-epoch permutation of the training set.
    public func minibatch(_ t: Int) -> [TaskExample] {
        let n = splits.train.count, b = options.batchSize
        return (0..<b).map { i in
            let k = t * b + i
            let epoch = k / n
            var order = Array(0..<n)
            var rng = stepSeed(runSeed: options.dataSeed ^ 0xDA7A, step: epoch, direction: 0)
            for j in stride(from: n - 1, to: 0, by: -1) {   // Fisher–Yates, seeded per epoch
                rng = stepSeed(runSeed: rng, step: j, direction: 1)
                order.swapAt(j, Int(rng % UInt64(j + 1)))
            }
            return splits.train[order[k % n]]
        }
    }

    /// Sequences and longest sequence (tokens) of step 0's forward: the shape the memory report's
    /// first-order estimate is computed for.
    public func firstBatchShape() -> (sequences: Int, length: Int) {
        let cands = minibatch(0).flatMap(\.candidates)
        return (cands.count, cands.map { scorer.sequence($0).ids.count }.max() ?? 1)
    }

    /// The evaluation metric: accuracy for classification tasks, SQuAD F1 of greedy answers for
    /// generation tasks (named by `metricName`).
    public func evaluate(_ examples: [TaskExample]) throws -> Double {
        var value = 0.0, total = 0
        for chunk in stride(from: 0, to: examples.count, by: 32) {
            let part = Array(examples[chunk..<min(examples.count, chunk + 32)])
            let s = try scorer.score(part, objective: isGeneration ? .negativeF1 : .crossEntropy)
            value += isGeneration ? s.f1Sum : Double(s.correct)
            total += s.count
        }
        return total == 0 ? 0 : value / Double(total)
    }

    var isGeneration: Bool { splits.train.first?.isGeneration ?? false }
    /// "accuracy" or "f1": the name of what `evaluate` returns, in metrics.jsonl keys.
    public var metricName: String { isGeneration ? "f1" : "accuracy" }

    var devExamples: [TaskExample] { options.evalCount.map { Array(splits.dev.prefix($0)) } ?? splits.dev }

    func header(completed: Int) -> [String: Any] {
        var h = options.header
        for (k, v) in baseHeader { h[k] = v }
        h["trainable"] = set.spec
        h["completed_steps"] = completed
        h["best_step"] = best.step
        h["best_dev_accuracy"] = best.dev
        h["dev_accuracy_before"] = devBefore
        return h
    }

    func save(completed: Int) throws {
        try TrajectoryFile(header: header(completed: completed), records: records).write(to: trajectoryURL)
        try AtomicFile.write(metrics.joined(separator: "\n") + (metrics.isEmpty ? "" : "\n"), to: metricsURL)
        try? AtomicFile.write(LossPlot.svg(metricsLines: metrics, title: "\(options.task): MeZO"), to: runDir.appendingPathComponent("loss.svg"))
    }

    func log(_ fields: [String: Any]) {
        if let d = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) { metrics.append(String(decoding: d, as: UTF8.self)) }
    }

    /// Runs (or resumes) the loop. `stopAfter` simulates a kill after that many completed steps.
    public func run(resume: Bool = false, stopAfter: Int? = nil, progress: (StepReport) -> Void = { _ in }) throws -> TrainSummary {
        try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
        let started = Date()
        var start = 0
        if resume, FileManager.default.fileExists(atPath: trajectoryURL.path) {
            let traj = try TrajectoryFile.read(trajectoryURL)
            let saved = try TrainOptions.from(header: traj.header, file: trajectoryURL.path)
            guard saved == options else {
                throw ModelError(file: trajectoryURL.path, field: "options", "the run was started with different options (\(saved)); resume with the same ones")
            }
            if let h = baseHeader["base_hash"] as? String, let t = traj.header["base_hash"] as? String, h != t {
                throw ModelError(file: trajectoryURL.path, field: "base_hash", "the run was trained from another checkpoint (hash \(t), this one is \(h))")
            }
            start = (traj.header["completed_steps"] as? Int) ?? 0
            records = traj.records.filter { Int($0.step) < start }
            best = ((traj.header["best_step"] as? Int) ?? 0, (traj.header["best_dev_accuracy"] as? Double) ?? -1)
            devBefore = (traj.header["dev_accuracy_before"] as? Double) ?? 0
            optimizer.replay(records)   // θ of the last saved step, bit for bit
            if let text = try? String(contentsOf: metricsURL, encoding: .utf8) {
                metrics = text.split(separator: "\n").map(String.init).filter { line in
                    guard let d = line.data(using: .utf8), let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
                          let s = o["step"] as? Int else { return false }
                    return s <= start
                }
            }
        } else {
            devBefore = try evaluate(devExamples)
            best = (0, devBefore)
            log(["step": 0, "dev_\(metricName)": devBefore])
            try save(completed: 0)
        }

        let ledger = model.backend.ledger
        var window: [Date] = []
        var lastDev = best.dev
        for t in start..<options.steps {
            let lr = options.schedule.lr(at: t)
            let examples = minibatch(t)
            let result: (records: [ZORecord], loss: Double)
            ledger.resetPeaks()
            var calls = 0
            do {
                result = try optimizer.step(t, runSeed: options.seed, lr: lr) {
                    let loss = try scorer.score(examples, objective: options.objective).loss
                    calls += 1
                    if calls == 1 { forwardPeakBytes = max(forwardPeakBytes, ledger.snapshot.total.peak) }
                    return loss
                }
            } catch let e as NonFiniteLoss {
                try save(completed: t)
                throw e
            }
            records += result.records
            stepPeakBytes = max(stepPeakBytes, ledger.snapshot.total.peak)
            let done = t + 1
            var fields: [String: Any] = ["step": done, "loss": result.loss, "g": Double(result.records.last!.projectedGrad), "lr": Double(lr)]
            var dev: Double? = nil
            if options.evalEvery > 0 && (done % options.evalEvery == 0 || done == options.steps) {
                dev = try evaluate(devExamples)
                fields["dev_\(metricName)"] = dev!
                lastDev = dev!
                if dev! > best.dev { best = (done, dev!) }
            }
            log(fields)
            window.append(Date())
            if window.count > 10 { window.removeFirst() }
            let rate = window.count > 1 ? Double(window.count - 1) / window.last!.timeIntervalSince(window.first!) : 0
            progress(StepReport(step: done, total: options.steps, loss: result.loss, projectedGrad: result.records.last!.projectedGrad,
                                lr: lr, stepsPerSecond: rate, peakBytes: ledger.snapshot.total.peak, devAccuracy: dev))
            if done % max(1, options.saveEvery) == 0 || dev != nil || done == options.steps { try save(completed: done) }
            if let stopAfter, done >= stopAfter, done < options.steps {
                try save(completed: done)
                throw RunInterrupted()
            }
        }
        if options.evalEvery <= 0 {
            lastDev = try evaluate(devExamples)
            if lastDev > best.dev { best = (options.steps, lastDev) }
            log(["step": options.steps, "dev_\(metricName)": lastDev])
        }
        // Keep the best: go back to the base and replay up to the best step (no extra memory).
        if !options.keepBest { best = (options.steps, lastDev) }
        if best.step != options.steps {
            try model.reloadWeights()
            optimizer.replay(records.filter { Int($0.step) < best.step })
        }
        let test = splits.test.isEmpty ? nil : try evaluate(splits.test)
        if let test { log(["step": options.steps, "test_\(metricName)": test, "best_step": best.step]) }
        try save(completed: options.steps)
        return TrainSummary(devBefore: devBefore, devAfter: lastDev, bestStep: best.step, bestDev: best.dev, test: test,
                            steps: options.steps, seconds: Date().timeIntervalSince(started))
    }
}
