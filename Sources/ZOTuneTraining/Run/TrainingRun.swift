import Foundation
import ZOTuneBackend
import ZOTuneModels

/// A run option that cannot go ahead: one line naming the option (as the command line spells it,
/// which is also its key in a run file) and the cause. `zotune` reports it as a usage error.
public struct RunConfigError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One fine-tuning run as a value: model, data, trainable set, optimizer, schedule, evaluation,
/// distribution and output. `zotune train` parses its flags (or a `--config` file, which is this
/// value's JSON, keyed by the option names without `--`) into one, and every run writes its
/// resolved form to `config.json`; that file, given back to `--config`, reruns the run bit for bit.
///
///     var run = TrainingRun(model: "smollm2.gguf", task: "sst2", dataDir: "data", out: "runs/a")
///     run.steps = 100
///     let result = try run.start(on: CPUBackend())
public struct TrainingRun: Sendable, Equatable {
    // Model
    public var model: String
    /// Weight storage: auto (WeightStorage.resolve: a bf16/f16 checkpoint kept on CUDA, else f32), f32,
    /// bf16, f16, or gguf (quantized blocks, frozen base).
    public var dtype = "auto"
    /// GEMM precision: auto, f32, mixed or tf32.
    public var precision = "auto"
    /// `--sliding-window N`: the attention window a file cannot state (ModelFile.overridingSlidingWindow;
    /// nil: the file's own attention). It changes every forward, so it is part of the run.
    public var slidingWindow: Int?
    // Data
    public var task: String
    public var dataDir: String?
    public var taskFile: String?
    public var trainFile: String?
    public var devFile: String?
    public var testFile: String?
    public var template: String?
    public var labels: String?
    public var dataSeed: UInt64 = 0
    public var trainCount = 1000
    public var devCount = 500
    public var testCount = 1000
    // Trainable set
    public var peft: PEFTConfig?
    public var blocks: BlockwiseOptions?
    /// nil: MeZO with ε by the adapter (`resolved()` fills it in).
    public var optimizer: OptimizerConfig?
    // Schedule, evaluation, saving
    /// nil: 1e-6, or the adapter's default (`resolved()` fills it in).
    public var lr: Float?
    public var batchSize = 16
    public var steps = 1000
    public var schedule = "constant"
    public var warmup = 0
    public var objective = "ce"
    public var maxLength = 256
    public var evalEvery = 0
    public var evalCount: Int?
    public var seed: UInt64 = 0
    public var saveEvery = 10
    public var keepLast = false
    // Distribution
    public var distributed = "auto"
    public var checkReplicasEvery = 100
    // Output
    public var out: String?

    public init(model: String, task: String, dataDir: String? = nil, out: String? = nil) {
        self.model = model
        self.task = task
        self.dataDir = dataDir
        self.out = out
    }

    public var isCustomTask: Bool { task.lowercased() == "custom" }

    /// The same run with every default that depends on another option written out (the learning
    /// rate and ε by the adapter, DiZO's projected layers under an adapter): what config.json holds.
    public func resolved() -> TrainingRun {
        var r = self
        r.lr = lr ?? peft?.defaultLR ?? 1e-6
        r.optimizer = optimizer ?? Self.defaultOptimizer(.mezo, peft: peft)
        return r
    }

    /// `kind` with its defaults under `peft`: ε by the adapter (and what else an adapter changes).
    public static func defaultOptimizer(_ kind: OptimizerKind, peft: PEFTConfig?) -> OptimizerConfig {
        OptimizerConfig.defaults(kind, eps: peft?.defaultEps ?? 1e-3, peft: peft)
    }

    // MARK: validation

    /// Every range and cross-option rule, once; the error names the option.
    public func validate() throws {
        func fail(_ s: String) -> RunConfigError { RunConfigError(s) }
        // Data
        if !isCustomTask {
            guard taskFile == nil, trainFile == nil, devFile == nil, testFile == nil, template == nil, labels == nil else {
                throw fail("--task-file, --train-file, --dev-file, --test-file, --template and --labels go with --task custom")
            }
        }
        for (name, n) in [("--train-count", trainCount), ("--dev-count", devCount), ("--test-count", testCount)] where n < 0 {
            throw fail("\(name) must be 0 or more (got \(n))")
        }
        // Model
        guard dtype == "gguf" || dtype == "auto" || DType(rawValue: dtype)?.isFloat == true else { throw fail("--dtype must be auto, f32, bf16, f16 or gguf") }
        guard GemmPrecision(rawValue: precision) != nil || precision == "auto" else { throw fail("--precision must be auto, f32, mixed or tf32 (got \(precision))") }
        if let w = slidingWindow, w < 0 { throw fail("--sliding-window must be 0 (no window) or a positive number of keys (got \(w))") }
        // Trainable set
        switch peft {
        case .lora(let o)?:
            guard o.rank >= 1 else { throw fail("--lora-rank must be at least 1") }
            guard o.alpha > 0 && o.alpha.isFinite else { throw fail("--lora-alpha must be positive") }
        case .prefix(let o)?: guard o.tokens >= 1 else { throw fail("--prefix-tokens must be at least 1") }
        case .prompt(let o)?: guard o.tokens >= 1 else { throw fail("--prompt-tokens must be at least 1") }
        case nil: break
        }
        if let b = blocks {
            if (b.level == .patterns) != !b.patterns.isEmpty { throw fail("--block-patterns goes with --blocks patterns, and it needs them") }
            guard b.stepsPerBlock >= 1 else { throw fail("--block-steps must be at least 1") }
        }
        // Optimizer (each optimizer's own ranges are checked where it is built)
        let optimizer = resolved().optimizer!
        if peft != nil && optimizer.kind == .zoop {
            throw fail("--optimizer zoop trains its own noisy linear layers of the base; it does not combine with --peft")
        }
        do { try optimizer.validate() } catch let e as OptimizerOptionError { throw fail(e.message) }
        // Schedule
        let lr = resolved().lr!
        guard LRSchedule(rawValue: schedule) != nil else { throw fail("--schedule must be constant, linear or cosine") }
        guard ObjectiveKind(rawValue: objective) != nil else { throw fail("--objective must be ce, lm, neg-accuracy or neg-f1") }
        guard steps >= 1 else { throw fail("--steps must be at least 1 (got \(steps))") }
        guard batchSize >= 1 else { throw fail("--batch-size must be at least 1 (got \(batchSize))") }
        // A step's examples are gathered at once, and the sampler counts examples as steps × batch.
        guard batchSize <= 1 << 20 else { throw fail("--batch-size must be at most \(1 << 20) (got \(batchSize))") }
        guard !steps.multipliedReportingOverflow(by: batchSize).overflow else {
            throw fail("--steps \(steps) × --batch-size \(batchSize) examples overflow a 64-bit count")
        }
        guard lr.isFinite && lr > 0 else { throw fail("--lr must be a positive number (got \(lr))") }
        guard warmup >= 0 else { throw fail("--warmup must be 0 or more (got \(warmup))") }
        guard evalEvery >= 0 else { throw fail("--eval-every must be 0 (only at the end) or more (got \(evalEvery))") }
        if let evalCount, evalCount < 1 { throw fail("--eval-count must be at least 1 (got \(evalCount))") }
        guard maxLength >= 2 else { throw fail("--max-length must be at least 2 tokens (got \(maxLength))") }
        guard saveEvery >= 1 else { throw fail("--save-every must be at least 1 (got \(saveEvery))") }
        // Distribution
        guard ["auto", "mpi", "none"].contains(distributed) else { throw fail("--distributed must be auto, mpi or none (got \(distributed))") }
        guard checkReplicasEvery >= 1 else { throw fail("--check-replicas-every must be at least 1 (got \(checkReplicasEvery))") }
    }

    /// The schedule, evaluation and saving the trainer and the run header take.
    public func runOptions() throws -> RunOptions {
        try validate()
        let r = resolved()
        return RunOptions(task: dataLabel, steps: steps, batchSize: batchSize, lr: r.lr!, schedule: LRSchedule(rawValue: schedule)!,
                          warmupSteps: warmup, objective: ObjectiveKind(rawValue: objective)!, evalEvery: evalEvery, evalCount: evalCount,
                          seed: seed, dataSeed: dataSeed, saveEvery: saveEvery, maxLength: maxLength, keepBest: !keepLast)
    }

    /// Sizes that only the model bounds: a LoRA rank above the hidden size adds nothing but memory
    /// (the update's rank is at most a matrix's smaller side); virtual tokens take positions.
    public static func check(_ peft: PEFTConfig?, model: ModelConfig) throws {
        switch peft {
        case .lora(let o)? where o.rank > model.hiddenSize:
            throw RunConfigError("--lora-rank \(o.rank) exceeds the model's hidden size \(model.hiddenSize)")
        case .prefix(let o)? where o.tokens >= model.maxPositions:
            throw RunConfigError("--prefix-tokens \(o.tokens) leave none of the model's \(model.maxPositions) positions")
        case .prompt(let o)? where o.tokens >= model.maxPositions:
            throw RunConfigError("--prompt-tokens \(o.tokens) leave none of the model's \(model.maxPositions) positions")
        default: return
        }
    }

    // MARK: data

    /// The options that choose the examples, as typed (the run header keeps them; resume compares).
    public var dataFingerprintOptions: [String: String] {
        var o = ["--train-count": "\(trainCount)", "--dev-count": "\(devCount)", "--test-count": "\(testCount)"]
        for (name, value) in [("--task-file", taskFile), ("--train-file", trainFile), ("--dev-file", devFile), ("--test-file", testFile),
                              ("--template", template), ("--labels", labels)] {
            if let value { o[name] = value }
        }
        return o
    }

    /// What the run header records as the task.
    public var dataLabel: String { isCustomTask ? "custom:" + (taskFile ?? trainFile ?? "") : task }

    /// The train, dev and test examples.
    public func loadData() throws -> TaskSplits {
        let counts = SplitCounts(train: trainCount, dev: devCount, test: testCount)
        guard isCustomTask else {
            guard taskFile == nil, trainFile == nil, devFile == nil, testFile == nil, template == nil, labels == nil else {
                throw RunConfigError("--task-file, --train-file, --dev-file, --test-file, --template and --labels go with --task custom")
            }
            guard let dataDir else { throw RunConfigError("--task \(task) reads its files from --data-dir DIR") }
            return try loadTask(task, dataDir: URL(fileURLWithPath: dataDir), dataSeed: dataSeed,
                                trainCount: counts.train, devCount: counts.dev, testCount: counts.test)
        }
        return try loadCustomTask(try customSpec(), dataSeed: dataSeed, counts: counts)
    }

    /// The JSON task file's spec (if --task-file is one) with the run's options over it.
    public func customSpec() throws -> CustomTaskSpec {
        var spec = CustomTaskSpec()
        if let taskFile {
            let url = URL(fileURLWithPath: taskFile)
            if url.pathExtension.lowercased() == "json" { spec = try CustomTaskSpec.load(url) } else { spec.file = url }
        }
        func url(_ path: String?) -> URL? { path.map { URL(fileURLWithPath: $0) } }
        if trainFile != nil || devFile != nil || testFile != nil {
            guard spec.file == nil else { throw RunConfigError("give one data file (--task-file) or separate --train-file/--dev-file/--test-file, not both") }
            (spec.train, spec.dev, spec.test) = (url(trainFile) ?? spec.train, url(devFile) ?? spec.dev, url(testFile) ?? spec.test)
        }
        if let template { spec.template = try PromptTemplate(Self.unescape(template)) }
        if let labels { spec.labels = try LabelVerbalizer.parseList(Self.unescape(labels), source: "--labels") }
        return spec
    }

    /// `\n` and `\t` typed on a command line become a newline and a tab (`\\` a backslash).
    static func unescape(_ s: String) -> String {
        var out = "", escaped = false
        for c in s {
            if escaped {
                switch c { case "n": out.append("\n"); case "t": out.append("\t"); case "\\": out.append("\\"); default: out.append("\\"); out.append(c) }
                escaped = false
            } else if c == "\\" { escaped = true } else { out.append(c) }
        }
        if escaped { out.append("\\") }
        return out
    }

    // Storage (`dtype`, `precision`, auto included) is resolved for the checkpoint and device by
    // WeightStorage.resolve when the run starts (RunSession).
}
