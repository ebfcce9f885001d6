import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// Where task data comes from and how it is sampled (MeZO: 1000 / 500 / 1000).
struct DataOptions: ParsableArguments {
    @Option(help: "Task: sst2, movies, rte, cb, boolq, wsc, wic, multirc, copa, record, winogrande, squad, drop, or custom (your own file: --task-file).")
    var task: String

    @Option(name: .customLong("data-dir"), help: "Directory with the built-in tasks' files in their original formats.")
    var dataDir: String?

    @Option(name: .customLong("task-file"), help: "--task custom: a data file (.jsonl, .csv, .tsv; train/dev/test drawn from it) or a JSON task file (.json).")
    var taskFile: String?
    @Option(name: .customLong("train-file"), help: "--task custom: a separate train file (with --test-file, and --dev-file).")
    var trainFile: String?
    @Option(name: .customLong("dev-file"), help: "--task custom: a separate dev file.")
    var devFile: String?
    @Option(name: .customLong("test-file"), help: "--task custom: a separate test file (dev is drawn from it too without --dev-file).")
    var testFile: String?
    @Option(help: "--task custom: the prompt, with {field} placeholders (\\n is a newline), e.g. '{text} It was'.")
    var template: String?
    @Option(help: "--task custom, classification: label=verbalizer pairs, e.g. '0= terrible,1= great'.")
    var labels: String?

    @Option(name: .customLong("data-seed"), help: "Seed of the train/dev/test draw.")
    var dataSeed: UInt64 = 0

    @Option(name: .customLong("train-count"), help: "Training examples drawn.")
    var trainCount = 1000

    @Option(name: .customLong("dev-count"), help: "Dev examples drawn.")
    var devCount = 500

    @Option(name: .customLong("test-count"), help: "Test examples drawn.")
    var testCount = 1000

    var isCustom: Bool { task.lowercased() == "custom" }

    /// The options that choose the examples, as typed (the run header keeps them; resume compares).
    var fingerprintOptions: [String: String] {
        var o = ["--train-count": "\(trainCount)", "--dev-count": "\(devCount)", "--test-count": "\(testCount)"]
        for (name, value) in [("--task-file", taskFile), ("--train-file", trainFile), ("--dev-file", devFile), ("--test-file", testFile),
                              ("--template", template), ("--labels", labels)] {
            if let value { o[name] = value }
        }
        return o
    }

    /// What the run header records as the task.
    var label: String { isCustom ? "custom:" + (taskFile ?? trainFile ?? "") : task }

    func load() throws -> TaskSplits {
        let counts = SplitCounts(train: trainCount, dev: devCount, test: testCount)
        guard isCustom else {
            guard taskFile == nil, trainFile == nil, devFile == nil, testFile == nil, template == nil, labels == nil else {
                throw ValidationError("--task-file, --train-file, --dev-file, --test-file, --template and --labels go with --task custom")
            }
            guard let dataDir else { throw ValidationError("--task \(task) reads its files from --data-dir DIR") }
            return try loadTask(task, dataDir: URL(fileURLWithPath: dataDir), dataSeed: dataSeed,
                                trainCount: counts.train, devCount: counts.dev, testCount: counts.test)
        }
        return try loadCustomTask(try customSpec(), dataSeed: dataSeed, counts: counts)
    }

    /// The JSON task file's spec (if --task-file is one) with the command line's options over it.
    func customSpec() throws -> CustomTaskSpec {
        var spec = CustomTaskSpec()
        if let taskFile {
            let url = URL(fileURLWithPath: taskFile)
            if url.pathExtension.lowercased() == "json" { spec = try CustomTaskSpec.load(url) } else { spec.file = url }
        }
        func url(_ path: String?) -> URL? { path.map { URL(fileURLWithPath: $0) } }
        if trainFile != nil || devFile != nil || testFile != nil {
            guard spec.file == nil else { throw ValidationError("give one data file (--task-file) or separate --train-file/--dev-file/--test-file, not both") }
            (spec.train, spec.dev, spec.test) = (url(trainFile) ?? spec.train, url(devFile) ?? spec.dev, url(testFile) ?? spec.test)
        }
        if let template { spec.template = try PromptTemplate(unescape(template)) }
        if let labels { spec.labels = try LabelVerbalizer.parseList(unescape(labels), source: "--labels") }
        return spec
    }

    /// `\n` and `\t` typed on a command line become a newline and a tab (`\\` a backslash).
    private func unescape(_ s: String) -> String {
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
}

/// The run's schedule, evaluation, seeds and saving (everything but the optimizer).
struct RunArguments: ParsableArguments {
    @Option(help: "Learning rate η, the peak of the schedule (default 1e-6; with --peft: 1e-4 lora, 1e-2 prefix, 1e-3 prompt).")
    var lr: Float?
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
    // Optional so that pretrain, whose loss and window length are its own, can refuse them.
    @Option(help: "Objective: ce (cross-entropy over candidates, the default), lm (LM loss of the answer), neg-accuracy, neg-f1 (generation tasks).")
    var objective: String?
    @Option(name: .customLong("max-length"), help: "Longest token sequence (longer prompts lose their start; default 256).")
    var maxLength: Int?
    @Option(name: .customLong("save-every"), help: "Save the trajectory every N steps.")
    var saveEvery = 10
    @Flag(name: .customLong("keep-last"), help: "End on the last step's weights instead of the best dev evaluation's.")
    var keepLast = false

    func options(task: String, dataSeed: UInt64, peft: PEFTConfig? = nil) throws -> RunOptions {
        let lr = self.lr ?? peft?.defaultLR ?? 1e-6
        guard let sched = LRSchedule(rawValue: schedule) else { throw ValidationError("--schedule must be constant, linear or cosine") }
        let objective = self.objective ?? "ce", maxLength = self.maxLength ?? 256
        guard let obj = ObjectiveKind(rawValue: objective) else { throw ValidationError("--objective must be ce, lm, neg-accuracy or neg-f1") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1 (got \(steps))") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1 (got \(batchSize))") }
        // A step's examples are gathered at once, and the sampler counts examples as steps × batch.
        guard batchSize <= 1 << 20 else { throw ValidationError("--batch-size must be at most \(1 << 20) (got \(batchSize))") }
        guard !steps.multipliedReportingOverflow(by: batchSize).overflow else {
            throw ValidationError("--steps \(steps) × --batch-size \(batchSize) examples overflow a 64-bit count")
        }
        guard lr.isFinite && lr > 0 else { throw ValidationError("--lr must be a positive number (got \(lr))") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more (got \(warmup))") }
        guard evalEvery >= 0 else { throw ValidationError("--eval-every must be 0 (only at the end) or more (got \(evalEvery))") }
        if let evalCount, evalCount < 1 { throw ValidationError("--eval-count must be at least 1 (got \(evalCount))") }
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2 tokens (got \(maxLength))") }
        guard saveEvery >= 1 else { throw ValidationError("--save-every must be at least 1 (got \(saveEvery))") }
        return RunOptions(task: task, steps: steps, batchSize: batchSize, lr: lr, schedule: sched, warmupSteps: warmup, objective: obj,
                          evalEvery: evalEvery, evalCount: evalCount, seed: seed, dataSeed: dataSeed, saveEvery: saveEvery,
                          maxLength: maxLength, keepBest: !keepLast)
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fine-tune a model on a task with forward passes only (MeZO and the ZO optimizer family).")

    @OptionGroup var model: ModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup(title: "Run") var runArguments: RunArguments
    @OptionGroup var optimizers: OptimizerArgumentGroups
    @OptionGroup(title: "Parameter-efficient tuning") var peftArguments: PEFTArguments
    @OptionGroup(title: "Block-wise ZO") var blockArguments: BlockArguments
    @OptionGroup(title: "Data parallelism (mpirun -np N zotune train ...)") var distributedArguments: DistributedArguments
    @Option(help: "Run directory: metrics.jsonl, trajectory.zot, loss.svg, model/ (adapter/ with --peft).")
    var out: String?
    @Option(help: "Resume the interrupted run in this directory (same options; another value of an option that changes the result is refused).")
    var resume: String?
    @Flag(help: "Replace the run that --out DIR holds (its trajectory, metrics, export and summary) instead of refusing to.")
    var overwrite = false

    func run() throws {
        guard let world = try distributedArguments.world(), world.size > 1 else { return try train(nil) }
        // Ranks other than 0 compute everything and print and write nothing; an error on any
        // rank ends the whole job (the others would wait for it forever).
        if world.rank > 0 {
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, STDOUT_FILENO) }
        }
        do {
            try train(DataParallel(world: world, checkEvery: distributedArguments.checkReplicasEvery))
            world.finish()
        } catch {
            FileHandle.standardError.write(Data("zotune (rank \(world.rank) of \(world.size)): \(userMessage(for: error))\n".utf8))
            world.abort(1)
        }
    }

    func train(_ parallel: DataParallel?) throws {
        let writer = parallel.map { $0.world.rank == 0 } ?? true
        let peft = try peftArguments.config()
        let config = try optimizers.config(peft: peft)
        let options = try runArguments.options(task: data.label, dataSeed: data.dataSeed, peft: peft)
        let blocks = try blockArguments.options(seed: options.seed)
        let dir = try RunDirectory(out: out, resume: resume, overwrite: overwrite, lock: writer)
        defer { withExtendedLifetime(dir) {} }
        if case .finished(let progress) = dir.state { return print(dir.finishedNotice(progress)) }
        let runDir = dir.url
        let backend = try device.backend()
        let file = try model.open()
        let tokenizer = try file.requireTokenizer()
        let splits = try data.load()
        // Dev accuracy before and after, and the best step, are measured on dev: a run needs one.
        guard !splits.dev.isEmpty else {
            throw ValidationError("--dev-count: the dev split of \(splits.task) is empty (--dev-count \(data.devCount), --train-count \(data.trainCount), " +
                                  "\(splits.train.count) train examples drawn); a run measures dev \(splits.train.first?.isGeneration == true ? "F1" : "accuracy") " +
                                  "before and after training: leave it at least one example")
        }
        for note in splits.notes { print("data: \(note)") }
        print("data: \(splits.train.count) train, \(splits.dev.count) dev, \(splits.test.count) test examples of \(splits.task)")
        let lm = try model.load(file, on: backend)
        if lm.weights.hasBlocks && peft == nil {
            throw ValidationError("--dtype gguf keeps the base quantized and frozen: train an adapter over it (--peft lora, prefix or prompt)")
        }
        let base = BaseCheckpoint(path: file.path, hash: try checkpointHash(file.path), format: file.format.rawValue,
                                  dtype: model.keepBlocks ? "gguf" : try model.weightDType().rawValue, precision: lm.precision.rawValue)
        try PEFTArguments.check(peft, model: lm.config)
        let adapter = try peft?.make(model: lm)
        let optimizer: any ZOOptimizer
        do {
            optimizer = try blocks == nil && adapter == nil ? config.make(model: lm)
                : config.make(set: try adapter?.set ?? config.trainableSet(lm), backend: backend, blocks: blocks)
        } catch let e as BlockError { throw ValidationError(e.description) }
        let trainer = try Trainer(model: lm, tokenizer: tokenizer, splits: splits, options: options, optimizer: optimizer, runDir: runDir,
                                  base: base, adapter: adapter)
        trainer.dataFingerprint = DataFingerprint(options: data.fingerprintOptions, contentHash: splits.contentHash)
        if let parallel {
            guard config.kind != .zoop else { throw ValidationError("--optimizer zoop cannot run data-parallel: its update needs every example's activations on one rank") }
            parallel.attach(trainer)
            injectReplicaFault(trainer, rank: parallel.world.rank)
            print("data parallel: \(parallel.world.size) ranks (MPI); replicas compared every \(parallel.checkEvery) steps")
        }
        print("model: \(file.config.architecture.rawValue), \(trainer.set.parameterCount) trainable parameters" +
              (peft.map { " (\($0))" } ?? "") + "; \(backend.summary)")
        print("optimizer: \(config); \(String(format: "%g", optimizer.meanForwardsPerStep)) forwards per step, state \(formatBytes(optimizer.stateBytes))")
        if let b = optimizer as? BlockwiseZO { print("blocks: \(b.blocks.count) (\(b.options.summary)): " + b.blocks.prefix(4).map(\.name).joined(separator: ", ") + (b.blocks.count > 4 ? ", …" : "")) }
        backend.ledger.resetPeaks()
        let summary = try runWithProgress(trainer, resume: dir.resuming, parallel: parallel)
        if let parallel, let scorer = (trainer.data as? TaskData)?.scorer {
            // Every rank: its share of the forwards and what it sent (stderr: the other ranks' stdout is closed).
            let w = parallel.world
            FileHandle.standardError.write(Data(("zotune: rank \(w.rank) of \(w.size): computed \(scorer.computedMicroBatches) of \(scorer.formedMicroBatches) micro-batches; " +
                "sent \(w.bytesSent) bytes (\(w.bytesSent / max(1, summary.steps)) per step, evaluations included)\n").utf8))
        }
        guard writer else { return }

        // Inference-only reference: one forward of each training minibatch on its own (measured
        // inside every step, before any second forward or update pass).
        // A resume that found every step done (a run stopped during its ending) ran no step here:
        // there is no peak to report, and a 0 would read as a ratio of billions.
        let shape = trainer.firstBatchShape()
        let report = trainer.stepPeakBytes == 0 ? nil : MemoryReport(zoPeakBytes: trainer.stepPeakBytes, inferencePeakBytes: trainer.forwardPeakBytes,
                                  foAdamBytes: MemoryReport.foAdamBytes(config: lm.config, parameters: trainer.set.parameterCount,
                                                                        frozenBytes: adapter == nil ? 0 : lm.weights.bytes,
                                                                        batch: shape.sequences, seqLen: shape.length),
                                  weightBytes: lm.weights.bytes, optimizer: config.kind.rawValue, stateBytes: optimizer.stateBytes)

        let exportMetadata = ["zotune_trajectory": "trajectory.zot", "zotune_step": String(summary.bestStep)]
        if let adapter {
            try PEFTExport.write(adapter, model: lm, baseModel: file.path, to: runDir.appendingPathComponent("adapter"), metadata: exportMetadata)
        } else {
            try HFExport.write(lm, file: file, to: runDir.appendingPathComponent("model"), metadata: exportMetadata)
        }
        let metric = trainer.metricName
        print("dev \(metric): " + String(format: "%.4f before, %.4f after %d steps (best %.4f at step %d)",
                                            summary.devBefore, summary.devAfter, summary.steps, summary.bestDev, summary.bestStep))
        if let test = summary.test { print("test (best step): \(test.summary)") }
        print(report?.table ?? "memory: not measured (no training step ran in this process)")
        print(String(format: "trained in %.0f s; run directory ", summary.seconds) + runDir.path)
        var json = report?.json ?? [:]
        json["dev_before"] = summary.devBefore
        json["dev_after"] = summary.devAfter
        json["best_step"] = summary.bestStep
        json["test"] = summary.test?.metric ?? NSNull()
        json["seconds"] = summary.seconds
        json["inference_peak_excludes_state"] = true
        json["forwards_per_step"] = optimizer.meanForwardsPerStep
        json["optimizer_config"] = config.description
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), to: runDir.appendingPathComponent("summary.json"))
        try trainer.markFinished()
    }
}

/// Runs (or resumes) `trainer` with a progress line; a NaN or infinite loss becomes an error that
/// says where the last good step is kept.
func runWithProgress(_ trainer: Trainer, resume: Bool, parallel: DataParallel? = nil) throws -> TrainSummary {
    fflush(nil)  // all C streams: the summary printed so far lands before the progress line
    let progress = ProgressLine(total: trainer.options.steps)
    defer { progress.finish() }
    StopSignals.install()
    defer { StopSignals.restore() }
    do {
        // Data-parallel ranks agree on stopping, so all stop after the same step.
        let stop = { parallel.map { $0.anyRank(StopSignals.caught != 0) } ?? (StopSignals.caught != 0) }
        return try trainer.run(resume: resume, interrupt: stop) { progress.update($0) }
    } catch let e as NonFiniteLoss {
        throw ValidationError("\(e.description). Trajectory and metrics in \(trainer.runDir.path) hold the last good step; rebuild it with `zotune replay`.")
    } catch let e as RunInterrupted {
        progress.finish()
        let signal = StopSignals.caught
        let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
        FileHandle.standardError.write(Data(("zotune: stopped by \(name) after step \(e.completedSteps) of \(trainer.options.steps); the run is saved. " +
                                             "Resume with: zotune \(CommandLine.arguments.dropFirst().first ?? "train") ... --resume \(trainer.runDir.path)\n").utf8))
        exit(128 + signal)
    }
}

/// SIGINT (Ctrl-C) and SIGTERM during training: the first one lets the current step finish,
/// saves the run and exits with 128 + the signal; a second one ends the process at once.
enum StopSignals {
    nonisolated(unsafe) static var caught: Int32 = 0

    static func install() {
        for s in [SIGINT, SIGTERM] {
            signal(s) { sig in
                StopSignals.caught = sig
                signal(sig, SIG_DFL)   // async-signal-safe; the next one is not deferred
            }
        }
    }

    static func restore() {
        for s in [SIGINT, SIGTERM] { signal(s, SIG_DFL) }
    }
}

/// One progress line per step: overwritten in place on a terminal, one line per step otherwise.
final class ProgressLine {
    let total: Int
    static let tty = isatty(STDOUT_FILENO) != 0
    init(total: Int) { self.total = total }

    func update(_ r: StepReport) {
        let eta = r.stepsPerSecond > 0 ? Double(r.total - r.step) / r.stepsPerSecond : 0
        var line = String(format: "step %d/%d  loss %.4f  g %+.3e  lr %.2e  %.2f it/s  ETA %@  peak %@",
                          r.step, r.total, r.loss, r.projectedGrad, r.lr, r.stepsPerSecond, Self.duration(eta), formatBytes(r.peakBytes))
        if let dev = r.devMetric { line += String(format: "  dev %.4f", dev) }
        writeStdout(Self.tty ? "\r\u{1B}[K" + line + (r.devMetric != nil ? "\n" : "") : line + "\n")
    }

    func finish() { if Self.tty { writeStdout("\n") } }

    static func duration(_ s: Double) -> String {
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
    @Option(help: "A PEFT adapter directory (adapter_config.json + adapter_model.safetensors) to evaluate on the model.")
    var adapter: String?
    @Option(help: "In-context learning: K demonstrations from the train split before each example (MeZO's prompts; 0: zero-shot).")
    var icl = 0
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
        guard icl >= 0 else { throw ValidationError("--icl must be 0 or more (got \(icl))") }
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2 tokens (got \(maxLength))") }
        let prompts = try InContext.apply(examples, pool: splits.train, k: icl, dataSeed: data.dataSeed, stream: "\(splits.task)/icl")
        let lm = try model.load(file, on: backend)
        if let adapter { lm.hook = try PEFTExport.load(URL(fileURLWithPath: adapter), model: lm) }
        let scorer = Scorer(model: lm, tokenizer: try file.requireTokenizer(), maxLength: maxLength)
        let truncated = scorer.truncatedCount(prompts)
        if !json {
            if icl > 0 { print("in-context: \(icl) demonstrations per example, drawn from \(splits.train.count) train examples with data seed \(data.dataSeed)") }
            if truncated > 0 { print("\(truncated) of \(prompts.count) prompts exceed --max-length \(maxLength) tokens and lose their start (a leading BOS is kept)") }
            fflush(nil)
        }
        let started = Date()
        let result = try Evaluator(scorer: scorer).evaluate(prompts) { r in
            guard !json, r.examples > 0 else { return }
            let eta = Date().timeIntervalSince(started) / Double(r.examples) * Double(prompts.count - r.examples)
            writeStdout((ProgressLine.tty ? "\r\u{1B}[K" : "\r") + "\(r.examples)/\(prompts.count) examples, \(r.summary)  ETA \(ProgressLine.duration(eta))")
        }
        if json {
            var o: [String: Any] = ["task": data.label, "split": split, "examples": result.examples, "icl": icl, "truncated": truncated,
                                    "max_length": maxLength]
            if result.isGeneration { o["f1"] = result.f1; o["em"] = result.exactMatch } else { o["accuracy"] = result.accuracy }
            print(String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self))
        } else {
            writeStdout("\n")
        }
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Rebuild tuned weights (or a PEFT run's adapter) from the base model and a trajectory file: no data, no forwards.")

    @Option(help: "The base model the run started from.")
    var base: String
    @Option(help: "trajectory.zot of the run.")
    var trajectory: String
    @Option(help: "Output directory: Hugging Face format, or HF PEFT format for a --peft run.")
    var out: String
    @Flag(name: .customLong("all-steps"), help: "Replay every step instead of stopping at the best dev step.")
    var allSteps = false
    @OptionGroup var device: DeviceOptions

    func run() throws {
        let traj = try TrajectoryFile.read(URL(fileURLWithPath: trajectory))
        let h = traj.header
        if h.optimizer.kind == .zoop {
            throw ValidationError("\(trajectory): zoop steps depend on activations and cannot be replayed; the run directory holds the weights (model/, trainable.safetensors)")
        }
        let hash = try checkpointHash(base)
        guard h.base.hash == hash else {
            throw ValidationError("\(base) has content hash \(hash), but the trajectory was trained from \(h.base.hash) (\(h.base.path))")
        }
        let keepBlocks = h.base.dtype == "gguf"
        guard let dtype = keepBlocks ? .f32 : DType(rawValue: h.base.dtype) else {
            throw ValidationError("\(trajectory): base.dtype: unknown dtype \(h.base.dtype)")
        }
        let file = try ModelFile.open(base)
        let backend = try device.backend()
        let lm = try file.load(on: backend, dtype: dtype, keepBlocks: keepBlocks)
        let adapter = try h.peft?.make(model: lm)
        lm.hook = adapter
        let set = try adapter?.set ?? TrainableSet.from(spec: h.trainable, model: lm)
        let optimizer = try h.optimizer.make(set: set, backend: backend, blocks: h.blocks)
        let upTo = allSteps ? Int.max : h.progress.bestStep
        let records = traj.records.filter { Int($0.step) < upTo }
        let started = Date()
        optimizer.replay(records)
        backend.synchronize()
        // The same metadata as train's export, so a replay of the same steps is byte-identical to it.
        let step = allSteps ? h.progress.completedSteps : h.progress.bestStep
        let metadata = ["zotune_trajectory": URL(fileURLWithPath: trajectory).lastPathComponent, "zotune_step": String(step)]
        if let adapter {
            try PEFTExport.write(adapter, model: lm, baseModel: file.path, to: URL(fileURLWithPath: out), metadata: metadata)
        } else {
            try HFExport.write(lm, file: file, to: URL(fileURLWithPath: out), metadata: metadata)
        }
        print(String(format: "replayed %d updates (%d steps, %@) on %d parameters in %.1f s → %@", records.count,
                     Set(records.map(\.step)).count, h.optimizer.kind.rawValue, set.parameterCount, Date().timeIntervalSince(started), out))
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fold a LoRA adapter (HF PEFT format) into its base model and save the result in Hugging Face format.")

    @OptionGroup var model: ModelOptions
    @Option(help: "The adapter directory (adapter_config.json + adapter_model.safetensors), e.g. a run's adapter/.")
    var adapter: String
    @Option(help: "Output directory (Hugging Face format).")
    var out: String
    @OptionGroup var device: DeviceOptions

    func run() throws {
        let backend = try device.backend()
        if model.keepBlocks { throw ValidationError("merge writes full-precision weights: load the base with --dtype f32, bf16 or f16") }
        let (file, lm) = try model.load(on: backend)
        let loaded = try PEFTExport.load(URL(fileURLWithPath: adapter), model: lm)
        guard let lora = loaded as? LoRA else {
            throw ValidationError("\(adapter): \(loaded.config.name) tuning adds virtual positions and cannot be merged into the weights; use `eval --adapter` or load it with PEFT")
        }
        try lora.merge(into: lm)
        try HFExport.write(lm, file: file, to: URL(fileURLWithPath: out), metadata: ["zotune_adapter": adapter])
        print("merged \(lora.adaptedLayers.count) LoRA adapters (r \(lora.options.rank), α \(lora.options.alpha)) into \(model.model) → \(out)")
    }
}
