import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// Where task data comes from and how it is sampled (MeZO: 1000 / 500 / 1000).
struct DataOptions: ParsableArguments {
    // Optional so that `train --config FILE` can take it from the file.
    @Option(help: "Task: sst2, movies, rte, cb, boolq, wsc, wic, multirc, copa, record, winogrande, squad, drop, or custom (your own file: --task-file).")
    var task: String?

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

    /// These options in `run` (the task only if given).
    func apply(to run: inout TrainingRun) {
        if let task { run.task = task }
        (run.dataDir, run.taskFile, run.trainFile, run.devFile, run.testFile) = (dataDir, taskFile, trainFile, devFile, testFile)
        (run.template, run.labels, run.dataSeed) = (template, labels, dataSeed)
        (run.trainCount, run.devCount, run.testCount) = (trainCount, devCount, testCount)
    }

    func requireTask() throws -> String {
        guard let task else { throw ValidationError("give --task (a task name, or custom)") }
        return task
    }

    /// What the run header records as the task.
    var label: String { (try? run())?.dataLabel ?? task ?? "" }

    func run() throws -> TrainingRun {
        var r = TrainingRun(model: "", task: try requireTask())
        apply(to: &r)
        return r
    }

    func load() throws -> TaskSplits { try RunArgumentParsing.runConfigErrors { try run().loadData() } }
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

    /// These options in `run` (--objective and --max-length only if given).
    func apply(to run: inout TrainingRun) {
        (run.lr, run.batchSize, run.steps, run.evalEvery, run.evalCount, run.seed) = (lr, batchSize, steps, evalEvery, evalCount, seed)
        (run.schedule, run.warmup, run.saveEvery, run.keepLast) = (schedule, warmup, saveEvery, keepLast)
        if let objective { run.objective = objective }
        if let maxLength { run.maxLength = maxLength }
    }
}

/// `--model`, `--dtype` and `--precision` of a run: optional, so that `train --config FILE` can
/// take them from the file (the defaults are TrainingRun's).
struct RunModelOptions: ParsableArguments {
    @Option(help: "Model: a .gguf file, or a Hugging Face directory (config.json + safetensors + tokenizer.json).")
    var model: String?
    @Option(help: ArgumentHelp("Weight storage: auto (default), f32, bf16, f16 (math is f32), or gguf.",
                               discussion: "auto: on CUDA a bf16/f16 checkpoint stays in its dtype (tensor-core GEMMs under --precision auto), anything else is f32; on the CPU f32. The run header records the dtype chosen, which --resume and replay load. gguf keeps a GGUF file's quantized matrices (Q4_0…Q6_K) as stored, dequantized one at a time before each GEMM; other tensors are f32. Such a base is frozen: train adapters over it (--peft)."))
    var dtype: String?
    @Option(help: ArgumentHelp("GEMM precision: auto (default), f32, mixed or tf32.",
                               discussion: "mixed: bf16/f16 weights are tensor-core operands as stored (activations rounded to their type, f32 accumulation); f32: every product in f32 (low-precision weights widened into a scratch copy first); tf32: mixed, and f32 weights on TF32 tensor cores (CUDA only). auto: mixed on CUDA, f32 on the CPU (where mixed is an exact emulation, slower). See docs/cuda.md."))
    var precision: String?
    @Option(name: .customLong("sliding-window"),
            help: ArgumentHelp("Attention window in keys (0: none) for a file that cannot state it.",
                               discussion: ModelOptions.slidingWindowDiscussion + " Part of the run: config.json keeps it, --resume refuses another value, replay loads the base with it."))
    var slidingWindow: Int?

    func apply(to run: inout TrainingRun) {
        if let model { run.model = model }
        if let dtype { run.dtype = dtype }
        if let precision { run.precision = precision }
        if let slidingWindow { run.slidingWindow = slidingWindow }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fine-tune a model on a task with forward passes only (MeZO and the ZO optimizer family).")

    @Option(help: "A run file: JSON keyed by these options without their -- (every run writes its own as config.json); options given here override it.")
    var config: String?
    @OptionGroup var model: RunModelOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var device: DeviceOptions
    @OptionGroup(title: "Run") var runArguments: RunArguments
    @OptionGroup var optimizers: OptimizerArgumentGroups
    @OptionGroup(title: "Parameter-efficient tuning") var peftArguments: PEFTArguments
    @OptionGroup(title: "Block-wise ZO") var blockArguments: BlockArguments
    @OptionGroup(title: "Data parallelism (mpirun -np N zotune train ...)") var distributedArguments: DistributedArguments
    @Option(help: "Run directory: metrics.jsonl, trajectory.zot, loss.svg, config.json, model/ (adapter/ with --peft).")
    var out: String?
    @Option(help: "Resume the interrupted run in this directory (same options; another value of an option that changes the result is refused).")
    var resume: String?
    @Flag(help: "Replace the run that --out DIR holds (its trajectory, metrics, export and summary) instead of refusing to.")
    var overwrite = false

    func run() throws {
        SweepChild.bindToParent()
        let run = try RunArgumentParsing.runConfigErrors { try trainingRun(typed: RunArgumentParsing.typedOptions()) }
        var distributed = distributedArguments
        (distributed.distributed, distributed.checkReplicasEvery) = (run.distributed, run.checkReplicasEvery)
        guard let world = try distributed.world(), world.size > 1 else { return try train(run, nil) }
        // Ranks other than 0 compute everything and print and write nothing; an error on any
        // rank ends the whole job (the others would wait for it forever).
        if world.rank > 0 {
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, STDOUT_FILENO) }
        }
        do {
            try train(run, DataParallel(world: world, checkEvery: run.checkReplicasEvery))
            world.finish()
        } catch {
            FileHandle.standardError.write(Data("zotune (rank \(world.rank) of \(world.size)): \(userMessage(for: error))\n".utf8))
            world.abort(1)
        }
    }

    /// The run the command line describes: its flags, or the `--config` file with the options
    /// typed on the command line over it.
    func trainingRun(typed: Set<String>) throws -> TrainingRun {
        guard let config else {
            guard model.model != nil else { throw ValidationError("give --model (the checkpoint to train), or a run file with --config") }
            var run = TrainingRun(model: "", task: try data.requireTask())
            model.apply(to: &run)
            data.apply(to: &run)
            run.peft = try peftArguments.config()
            run.optimizer = try optimizers.config(peft: run.peft)
            runArguments.apply(to: &run)
            run.blocks = try blockArguments.options(seed: run.seed)
            (run.distributed, run.checkReplicasEvery, run.out) = (distributedArguments.distributed, distributedArguments.checkReplicasEvery, out)
            try run.validate()
            return run
        }
        let file = try TrainingRun.load(URL(fileURLWithPath: config), fallbacks: ["model": model.model, "task": data.task].compactMapValues { $0 })
        // The command line's run, read in the file's context: its adapter and block options
        // complete the file's (the library takes each option where typed).
        var given = file
        model.apply(to: &given)
        data.apply(to: &given)
        runArguments.apply(to: &given)
        (given.distributed, given.checkReplicasEvery, given.out) = (distributedArguments.distributed, distributedArguments.checkReplicasEvery, out)
        if !typed.isDisjoint(with: TrainingRun.peftOptions) {
            var arguments = peftArguments
            if !typed.contains("--peft") { arguments.peft = file.peft?.name ?? "none" }
            given.peft = try arguments.config()
        }
        if !typed.isDisjoint(with: TrainingRun.blockOptions) {
            given.blocks = try blockOverlay(file.blocks, seed: typed.contains("--seed") ? given.seed : file.seed, typed: typed)
        }
        return try file.overlaid(by: given, typed: typed, source: config) { base, peft in try optimizers.config(base: base, peft: peft) }
    }

    /// The file's block-wise options with the typed ones over them.
    func blockOverlay(_ base: BlockwiseOptions?, seed: UInt64, typed: Set<String>) throws -> BlockwiseOptions? {
        var a = blockArguments
        if let base {
            if !typed.contains("--blocks") { a.blocks = base.level.rawValue }
            if !typed.contains("--block-patterns") && !base.patterns.isEmpty { a.blockPatterns = base.patterns.joined(separator: ",") }
            if !typed.contains("--block-schedule") { a.blockSchedule = base.schedule.rawValue }
            if !typed.contains("--block-steps") && base.schedule == .sequential { a.blockSteps = base.stepsPerBlock }
            if !typed.contains("--block-reinit") { a.blockReinit = base.reinit != nil }
        }
        return try a.options(seed: seed)
    }

    func train(_ run: TrainingRun, _ parallel: DataParallel?) throws {
        let writer = parallel.map { $0.world.rank == 0 } ?? true
        let dir = try run.openDirectory(resume: resume, overwrite: overwrite, lock: writer)
        defer { withExtendedLifetime(dir) {} }
        if case .finished(let progress) = dir.state { return print(dir.finishedNotice(progress)) }
        let backend = try device.backend()
        let session = try RunArgumentParsing.runConfigErrors { try run.prepare(in: dir, on: backend, writer: writer) { print($0) } }
        let trainer = session.trainer, optimizer = session.optimizer, config = session.config
        if let parallel {
            guard config.kind != .zoop else { throw ValidationError("--optimizer zoop cannot run data-parallel: its update needs every example's activations on one rank") }
            parallel.attach(trainer)
            injectReplicaFault(trainer, rank: parallel.world.rank)
            print("data parallel: \(parallel.world.size) ranks (MPI); replicas compared every \(parallel.checkEvery) steps")
        }
        print("model: \(session.file.config.architecture.rawValue), \(trainer.set.parameterCount) trainable parameters" +
              (run.peft.map { " (\($0))" } ?? "") + "; \(backend.summary)")
        print("optimizer: \(config); \(String(format: "%g", optimizer.meanForwardsPerStep)) forwards per step, state \(formatBytes(optimizer.stateBytes))")
        if let b = optimizer as? BlockwiseZO { print("blocks: \(b.blocks.count) (\(b.options.summary)): " + b.blocks.prefix(4).map(\.name).joined(separator: ", ") + (b.blocks.count > 4 ? ", …" : "")) }
        let summary = try runWithProgress(session, parallel: parallel)
        if let parallel, let scorer = (trainer.data as? TaskData)?.scorer {
            // Every rank: its share of the forwards and what it sent (stderr: the other ranks' stdout is closed).
            let w = parallel.world
            FileHandle.standardError.write(Data(("zotune: rank \(w.rank) of \(w.size): computed \(scorer.computedMicroBatches) of \(scorer.formedMicroBatches) micro-batches; " +
                "sent \(w.bytesSent) bytes (\(w.bytesSent / max(1, summary.steps)) per step, evaluations included)\n").utf8))
        }
        guard writer else { return }
        // Inference-only reference: one forward of each training minibatch on its own (measured
        // inside every step, before any second forward or update pass).
        let report = session.memoryReport
        try session.finish(summary)
        print("dev \(trainer.metricName): " + String(format: "%.4f before, %.4f after %d steps (best %.4f at step %d)",
                                                        summary.devBefore, summary.devAfter, summary.steps, summary.bestDev, summary.bestStep))
        if let test = summary.test { print("test (best step): \(test.summary)") }
        print(report?.table ?? "memory: not measured (no training step ran in this process)")
        print(String(format: "trained in %.0f s; run directory ", summary.seconds) + dir.url.path)
    }
}

/// What `train --config` needs to know about the command line: which options were typed, and
/// where each one's value goes in a TrainingRun.
enum RunArgumentParsing {
    /// The long options typed on the command line (`--lr 1e-3` and `--lr=1e-3` alike).
    static func typedOptions(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Set<String> {
        var out = Set<String>()
        for a in arguments {
            if a == "--" { break }
            if a.hasPrefix("--") { out.insert(String(a.split(separator: "=", maxSplits: 1)[0])) }
        }
        return out
    }

    /// A RunConfigError (an option's value refused) as a usage error (exit 64).
    static func runConfigErrors<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as RunConfigError { throw ValidationError(e.description) }
    }

    // The library's tables (TrainingRun), under the names pretrain reads them by.
    static let blockFlags = TrainingRun.blockOptions
    static let launchFlags = TrainingRun.launchOptions
    static let optimizerFlags = TrainingRun.optimizerOptions

}

/// Runs (or resumes) `trainer` with a progress line; a NaN or infinite loss becomes an error that
/// says where the last good step is kept.
func runWithProgress(_ session: RunSession, parallel: DataParallel? = nil) throws -> TrainSummary {
    try runWithProgress(session.trainer, resume: session.directory.resuming, parallel: parallel) { interrupt, progress in
        try session.train(interrupt: interrupt, progress: progress)
    }
}

func runWithProgress(_ trainer: Trainer, resume: Bool, parallel: DataParallel? = nil,
                     body: ((() -> Bool, (StepReport) -> Void) throws -> TrainSummary)? = nil) throws -> TrainSummary {
    fflush(nil)  // all C streams: the summary printed so far lands before the progress line
    let progress = ProgressLine(total: trainer.options.steps)
    defer { progress.finish() }
    StopSignals.install()
    defer { StopSignals.restore() }
    do {
        // Data-parallel ranks agree on stopping, so all stop after the same step.
        let stop = { parallel.map { $0.anyRank(StopSignals.caught != 0) } ?? (StopSignals.caught != 0) }
        if let body { return try body(stop) { progress.update($0) } }
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
        guard !examples.isEmpty else { throw ValidationError("the \(split) split of \(data.task ?? "") is empty") }
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
        let backend = try device.backend()
        let started = Date()
        let r = try RunArgumentParsing.runConfigErrors {
            try TrainingRun.replay(trajectory: URL(fileURLWithPath: trajectory), base: base, to: URL(fileURLWithPath: out), allSteps: allSteps, on: backend)
        }
        print(String(format: "replayed %d updates (%d steps, %@) on %d parameters in %.1f s → %@", r.records.count,
                     Set(r.records.map(\.step)).count, r.header.optimizer.kind.rawValue, r.parameters, Date().timeIntervalSince(started), out))
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
