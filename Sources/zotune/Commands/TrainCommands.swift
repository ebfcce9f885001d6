import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// Where task data comes from and how it is sampled (MeZO: 1000 / 500 / 1000).
struct DataOptions: ParsableArguments {
    @Option(help: "Task: sst2, movies, rte, cb, boolq, wsc, wic, multirc, copa, record, winogrande, squad, drop.")
    var task: String

    @Option(name: .customLong("data-dir"), help: "Directory with the task files in their original formats.")
    var dataDir: String

    @Option(name: .customLong("data-seed"), help: "Seed of the train/dev/test draw.")
    var dataSeed: UInt64 = 0

    @Option(name: .customLong("train-count"), help: "Training examples drawn.")
    var trainCount = 1000

    @Option(name: .customLong("dev-count"), help: "Dev examples drawn.")
    var devCount = 500

    @Option(name: .customLong("test-count"), help: "Test examples drawn.")
    var testCount = 1000

    func load() throws -> TaskSplits {
        try loadTask(task, dataDir: URL(fileURLWithPath: dataDir), dataSeed: dataSeed,
                     trainCount: trainCount, devCount: devCount, testCount: testCount)
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fine-tune a model on a task with forward passes only (MeZO).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var device: DeviceOptions

    @Option(help: "Optimizer: mezo (ZO-SGD with n-SPSA).")
    var optimizer = "mezo"
    @Option(help: "Learning rate η.")
    var lr: Float = 1e-6
    @Option(help: "Perturbation scale ε.")
    var eps: Float = 1e-3
    @Option(name: .customLong("batch-size"), help: "Examples per step.")
    var batchSize = 16
    @Option(help: "Training steps.")
    var steps = 1000
    @Option(name: .customLong("eval-every"), help: "Evaluate on dev every N steps (0: only at the end).")
    var evalEvery = 0
    @Option(name: .customLong("eval-count"), help: "Dev examples per evaluation (default: the whole dev split).")
    var evalCount: Int?
    @Option(help: "Run seed (step seeds derive from it).")
    var seed: UInt64 = 0
    @Option(help: "Learning-rate schedule: constant, linear or cosine.")
    var schedule = "constant"
    @Option(help: "Warm-up steps.")
    var warmup = 0
    @Option(name: .customLong("weight-decay"), help: "Weight decay λ (not applied to biases and norm gains).")
    var weightDecay: Float = 0
    @Option(help: "SPSA directions per step (n-SPSA).")
    var directions = 1
    @Flag(name: .customLong("one-sided"), help: "One-sided estimate (L(θ+εz) − L(θ))/ε.")
    var oneSided = false
    @Option(help: "Objective: ce (cross-entropy over candidates), lm (LM loss of the answer), neg-accuracy, neg-f1 (generation tasks).")
    var objective = "ce"
    @Option(name: .customLong("max-length"), help: "Longest token sequence (longer prompts lose their start).")
    var maxLength = 256
    @Option(name: .customLong("save-every"), help: "Save the trajectory every N steps.")
    var saveEvery = 10
    @Option(help: "Run directory: metrics.jsonl, trajectory.zot, loss.svg, model/.")
    var out: String?
    @Option(help: "Resume the interrupted run in this directory (same options).")
    var resume: String?

    func run() throws {
        guard optimizer == "mezo" else { throw ValidationError("--optimizer: only mezo is available in this build") }
        guard let sched = LRSchedule(rawValue: schedule) else { throw ValidationError("--schedule must be constant, linear or cosine") }
        guard let obj = ObjectiveKind(rawValue: objective) else { throw ValidationError("--objective must be ce, lm, neg-accuracy or neg-f1") }
        guard let dir = resume ?? out else { throw ValidationError("give --out DIR (or --resume DIR)") }
        let runDir = URL(fileURLWithPath: dir)
        let backend = try device.backend()
        let file = try model.open()
        let tokenizer = try file.requireTokenizer()
        let splits = try data.load()
        for note in splits.notes { print("data: \(note)") }
        print("data: \(splits.train.count) train, \(splits.dev.count) dev, \(splits.test.count) test examples of \(splits.task)")
        let lm = try file.load(on: backend, dtype: try model.weightDType())
        let options = TrainOptions(task: data.task, steps: steps, batchSize: batchSize, lr: lr, schedule: sched, warmupSteps: warmup,
                                   mezo: MeZOOptions(eps: eps, weightDecay: weightDecay, directions: directions, oneSided: oneSided),
                                   objective: obj, evalEvery: evalEvery, evalCount: evalCount, seed: seed, dataSeed: data.dataSeed,
                                   saveEvery: saveEvery, maxLength: maxLength)
        let base: [String: Any] = ["base_path": file.path, "base_hash": try checkpointHash(file.path), "base_format": file.format.rawValue,
                                   "dtype": try model.weightDType().rawValue]
        let trainer = try Trainer(model: lm, tokenizer: tokenizer, splits: splits, options: options, runDir: runDir, base: base)
        print("model: \(file.config.architecture.rawValue), \(trainer.set.parameterCount) trainable parameters; \(backend.summary)")
        backend.ledger.resetPeaks()
        let progress = ProgressLine(total: steps)
        let summary: TrainSummary
        do {
            summary = try trainer.run(resume: resume != nil) { progress.update($0) }
        } catch let e as NonFiniteLoss {
            progress.finish()
            throw ValidationError("\(e.description). Trajectory and metrics in \(runDir.path) hold the last good step; rebuild it with `zotune replay`.")
        }
        progress.finish()
        let zoPeak = trainer.stepPeakBytes

        // Inference-only reference: one forward of each training minibatch on its own (measured
        // inside every step, before any second forward or update pass).
        let inferencePeak = trainer.forwardPeakBytes
        let shape = trainer.firstBatchShape()
        let report = MemoryReport(zoPeakBytes: zoPeak, inferencePeakBytes: inferencePeak,
                                  foAdamBytes: MemoryReport.foAdamBytes(config: lm.config, parameters: trainer.set.parameterCount,
                                                                        batch: shape.sequences, seqLen: shape.length),
                                  weightBytes: lm.weights.bytes)

        try HFExport.write(lm, file: file, to: runDir.appendingPathComponent("model"),
                           metadata: ["zotune_trajectory": "trajectory.zot", "zotune_step": String(summary.bestStep)])
        let metric = trainer.metricName
        print("dev \(metric): " + String(format: "%.4f before, %.4f after %d steps (best %.4f at step %d)",
                                            summary.devBefore, summary.devAfter, summary.steps, summary.bestDev, summary.bestStep))
        if let test = summary.test { print("test \(metric) (best step): " + String(format: "%.4f", test)) }
        print(report.table)
        print(String(format: "trained in %.0f s; run directory ", summary.seconds) + runDir.path)
        if let d = try? JSONSerialization.data(withJSONObject: report.json.merging(["dev_before": summary.devBefore, "dev_after": summary.devAfter,
                                                                                    "best_step": summary.bestStep, "test": summary.test ?? NSNull()]) { a, _ in a },
                                               options: [.sortedKeys]) {
            try AtomicFile.write(d, to: runDir.appendingPathComponent("summary.json"))
        }
    }
}

/// One progress line per step: overwritten in place on a terminal, one line per step otherwise.
final class ProgressLine {
    let total: Int
    let tty = isatty(STDOUT_FILENO) != 0
    init(total: Int) { self.total = total }

    func update(_ r: StepReport) {
        let eta = r.stepsPerSecond > 0 ? Double(r.total - r.step) / r.stepsPerSecond : 0
        var line = String(format: "step %d/%d  loss %.4f  g %+.3e  lr %.2e  %.2f it/s  ETA %@  peak %@",
                          r.step, r.total, r.loss, r.projectedGrad, r.lr, r.stepsPerSecond, duration(eta), formatBytes(r.peakBytes))
        if let dev = r.devAccuracy { line += String(format: "  dev %.4f", dev) }
        writeStdout(tty ? "\r\u{1B}[K" + line + (r.devAccuracy != nil ? "\n" : "") : line + "\n")
    }

    func finish() { if tty { writeStdout("\n") } }

    func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(t % 3600 / 60)m" : t >= 60 ? "\(t / 60)m\(t % 60)s" : "\(t)s"
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Evaluate a model (zero-shot or tuned) on a task split.")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var device: DeviceOptions

    @Option(help: "Split: dev or test.")
    var split = "dev"
    @Option(name: .customLong("max-length"), help: "Longest token sequence.")
    var maxLength = 256
    @Flag(help: "Print one JSON line.")
    var json = false

    func run() throws {
        let backend = try device.backend(quiet: json)
        let file = try model.open()
        let splits = try data.load()
        let examples: [TaskExample]
        switch split {
        case "dev": examples = splits.dev
        case "test": examples = splits.test
        default: throw ValidationError("--split must be dev or test")
        }
        guard !examples.isEmpty else { throw ValidationError("the \(split) split of \(data.task) is empty") }
        let lm = try file.load(on: backend, dtype: try model.weightDType())
        let scorer = Scorer(model: lm, tokenizer: try file.requireTokenizer(), maxLength: maxLength)
        if examples[0].isGeneration {
            var f1 = 0.0, em = 0.0, n = 0
            for start in stride(from: 0, to: examples.count, by: 8) {
                let s = try scorer.score(Array(examples[start..<min(examples.count, start + 8)]), objective: .negativeF1)
                f1 += s.f1Sum; em += s.exactSum; n += s.count
                if !json { writeStdout("\r\(n)/\(examples.count) examples, F1 \(String(format: "%.4f", f1 / Double(n))), EM \(String(format: "%.4f", em / Double(n)))") }
            }
            if json {
                print("{\"task\": \"\(data.task)\", \"split\": \"\(split)\", \"examples\": \(n), \"f1\": \(String(format: "%.6f", f1 / Double(max(1, n)))), \"em\": \(String(format: "%.6f", em / Double(max(1, n))))}")
            } else {
                writeStdout("\n")
            }
            return
        }
        var correct = 0, total = 0
        for start in stride(from: 0, to: examples.count, by: 32) {
            let s = try scorer.score(Array(examples[start..<min(examples.count, start + 32)]), objective: .crossEntropy)
            correct += s.correct
            total += s.count
            if !json { writeStdout("\r\(total)/\(examples.count) examples, accuracy \(String(format: "%.4f", Double(correct) / Double(max(1, total))))") }
        }
        let acc = Double(correct) / Double(max(1, total))
        if json {
            print("{\"task\": \"\(data.task)\", \"split\": \"\(split)\", \"examples\": \(total), \"accuracy\": \(String(format: "%.6f", acc))}")
        } else {
            writeStdout("\n")
        }
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Rebuild tuned weights from the base model and a trajectory file: no data, no forwards.")

    @Option(help: "The base model the run started from.")
    var base: String
    @Option(help: "trajectory.zot of the run.")
    var trajectory: String
    @Option(help: "Output directory (Hugging Face format).")
    var out: String
    @Flag(name: .customLong("all-steps"), help: "Replay every step instead of stopping at the best dev step.")
    var allSteps = false
    @OptionGroup var device: DeviceOptions

    func run() throws {
        let traj = try TrajectoryFile.read(URL(fileURLWithPath: trajectory))
        let options = try TrainOptions.from(header: traj.header, file: trajectory)
        let hash = try checkpointHash(base)
        if let want = traj.header["base_hash"] as? String, want != hash {
            throw ValidationError("\(base) has content hash \(hash), but the trajectory was trained from \(want) (\(traj.header["base_path"] ?? "?"))")
        }
        let dtype = DType(rawValue: (traj.header["dtype"] as? String) ?? "f32") ?? .f32
        let file = try ModelFile.open(base)
        let lm = try file.load(on: try device.backend(), dtype: dtype)
        let set = try TrainableSet.from(spec: (traj.header["trainable"] as? String) ?? "full", model: lm)
        let upTo = allSteps ? Int.max : ((traj.header["best_step"] as? Int) ?? Int.max)
        let records = traj.records.filter { Int($0.step) < upTo }
        let started = Date()
        MeZO(set: set, options: options.mezo, backend: lm.backend).replay(records)
        lm.backend.synchronize()
        try HFExport.write(lm, file: file, to: URL(fileURLWithPath: out), metadata: ["zotune_trajectory": trajectory])
        print(String(format: "replayed %d updates (%d steps) on %d parameters in %.1f s → %@", records.count,
                     Set(records.map(\.step)).count, set.parameterCount, Date().timeIntervalSince(started), out))
    }
}
