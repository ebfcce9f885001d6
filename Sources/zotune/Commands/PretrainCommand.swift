import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// The model a pre-training run builds: a config.json, or the shape flags (or a checkpoint: --init-from).
struct LlamaShapeArguments: ParsableArguments {
    @Option(name: .customLong("model-config"), help: "A Hugging Face config.json of a Llama to build (instead of the shape options below).")
    var modelConfig: String?
    @Option(help: "Transformer layers.")
    var layers = 6
    @Option(help: "Hidden size.")
    var hidden = 256
    @Option(help: "Attention heads.")
    var heads = 4
    @Option(name: .customLong("kv-heads"), help: "Key/value heads (default: --heads).")
    var kvHeads: Int?
    @Option(help: "MLP width (default: 8/3 · hidden rounded up to 16).")
    var intermediate: Int?
    @Option(name: .customLong("max-positions"), help: "Longest sequence the model is built for.")
    var maxPositions = 256
    @Flag(help: "An untied output head (default: tied to the token embeddings).")
    var untied = false

    /// The typed shape options into `run` (untyped ones stay nil: the defaults, and no conflict with --init-from).
    func apply(to run: inout PretrainingRun, typed: Set<String>) {
        if typed.contains("--model-config") { run.modelConfig = modelConfig }
        if typed.contains("--layers") { run.layers = layers }
        if typed.contains("--hidden") { run.hidden = hidden }
        if typed.contains("--heads") { run.heads = heads }
        if typed.contains("--kv-heads") { run.kvHeads = kvHeads }
        if typed.contains("--intermediate") { run.intermediate = intermediate }
        if typed.contains("--max-positions") { run.maxPositions = maxPositions }
        if typed.contains("--untied") { run.untied = untied }
    }
}

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pre-train a Llama (from seeded random weights, or from a checkpoint) on a text corpus with forward passes only (LM loss; any ZO optimizer, block-wise or not).")

    @Option(help: "A run file: JSON keyed by these options without their -- (every run writes its own as config.json); options given here override it.")
    var config: String?
    @Option(help: "Text corpus: a SQuAD v1.1 JSON file (its paragraphs, by article) or a UTF-8 text file (documents separated by blank lines).")
    var corpus: String?
    @Option(name: .customLong("held-out-every"), help: "Every Nth article (or document) is held out for perplexity.")
    var heldOutEvery = 10
    @Option(help: "Tokenizer: a tokenizer.json, or a model (GGUF file or HF directory) whose tokenizer to use; its vocabulary sizes the model.")
    var tokenizer: String?
    @OptionGroup(title: "Model") var shape: LlamaShapeArguments
    @Option(name: .customLong("init-from"), help: "Start from this Hugging Face Llama checkpoint directory (config.json + model.safetensors) instead of random weights; it sets the shape.")
    var initFrom: String?
    @Option(help: "Comma-separated name fragments: tensors whose name contains one are frozen (in no block, never moved), e.g. embed_tokens.")
    var freeze: String?
    @Option(name: .customLong("init-seed"), help: "Seed of the random initial weights (and of block re-initialisations).")
    var initSeed: UInt64 = 0
    @Option(name: .customLong("init-std"), help: "Standard deviation of the initial matrices (transformers' initializer_range).")
    var initStd: Float = 0.02
    @Option(name: .customLong("seq-len"), help: "Tokens per training window (contiguous text).")
    var seqLen = 128
    @Option(name: .customLong("data-seed"), help: "Seed of the window order.")
    var dataSeed: UInt64 = 0
    @OptionGroup var device: DeviceOptions
    @OptionGroup(title: "Run (--eval-count: held-out windows per evaluation; --steps default: one pass over the blocks with --block-steps epoch, else 1000)") var runArguments: RunArguments
    @OptionGroup var optimizers: OptimizerArgumentGroups
    @OptionGroup(title: "Block-wise ZO") var blockArguments: BlockArguments
    @Option(help: "Run directory: init/ (the initial model), config.json, metrics.jsonl, trajectory.zot, loss.svg, model/.")
    var out: String?
    @Option(help: "Resume the interrupted run in this directory (same options; another value of an option that changes the result is refused).")
    var resume: String?
    @Flag(help: "Replace the run that --out DIR holds (init/, trajectory, metrics, model/, summary) instead of refusing to.")
    var overwrite = false

    func validate() throws {
        // Pre-training's loss is the LM loss of each window, and its windows are --seq-len tokens.
        if runArguments.objective != nil { throw ValidationError("--objective is a train option: pretrain minimises the LM loss of each window") }
        if runArguments.maxLength != nil { throw ValidationError("--max-length is a train option: pretrain's windows are --seq-len tokens") }
    }

    /// The options typed on the command line over a run value (all of them without --config).
    static let plain: [String: @Sendable (inout PretrainingRun, PretrainingRun) -> Void] = [
        "--corpus": { $0.corpus = $1.corpus }, "--held-out-every": { $0.heldOutEvery = $1.heldOutEvery }, "--tokenizer": { $0.tokenizer = $1.tokenizer },
        "--seq-len": { $0.seqLen = $1.seqLen }, "--data-seed": { $0.dataSeed = $1.dataSeed }, "--model-config": { $0.modelConfig = $1.modelConfig },
        "--layers": { $0.layers = $1.layers }, "--hidden": { $0.hidden = $1.hidden }, "--heads": { $0.heads = $1.heads },
        "--kv-heads": { $0.kvHeads = $1.kvHeads }, "--intermediate": { $0.intermediate = $1.intermediate },
        "--max-positions": { $0.maxPositions = $1.maxPositions }, "--untied": { $0.untied = $1.untied },
        "--init-seed": { $0.initSeed = $1.initSeed }, "--init-std": { $0.initStd = $1.initStd }, "--init-from": { $0.initFrom = $1.initFrom },
        "--freeze": { $0.freeze = $1.freeze }, "--lr": { $0.lr = $1.lr }, "--batch-size": { $0.batchSize = $1.batchSize },
        "--steps": { $0.steps = $1.steps }, "--schedule": { $0.schedule = $1.schedule }, "--warmup": { $0.warmup = $1.warmup },
        "--eval-every": { $0.evalEvery = $1.evalEvery }, "--eval-count": { $0.evalCount = $1.evalCount }, "--seed": { $0.seed = $1.seed },
        "--save-every": { $0.saveEvery = $1.saveEvery }, "--keep-last": { $0.keepLast = $1.keepLast }, "--out": { $0.out = $1.out },
    ]

    /// The run the command line describes: its flags, or the `--config` file with the typed options over it.
    func pretrainingRun(typed: Set<String>) throws -> PretrainingRun {
        var given = PretrainingRun(corpus: corpus ?? "", tokenizer: tokenizer ?? "")
        (given.heldOutEvery, given.seqLen, given.dataSeed, given.initSeed, given.initStd) = (heldOutEvery, seqLen, dataSeed, initSeed, initStd)
        shape.apply(to: &given, typed: typed)
        given.initFrom = initFrom
        given.freeze = freeze.map { $0.split(separator: ",").map(String.init).filter { !$0.isEmpty } } ?? []
        if freeze != nil && given.freeze.isEmpty { throw ValidationError("--freeze needs at least one name fragment") }
        let r = runArguments
        (given.lr, given.batchSize, given.steps, given.evalEvery, given.evalCount, given.seed) =
            (r.lr, r.batchSize, typed.contains("--steps") ? r.steps : nil, r.evalEvery, r.evalCount, r.seed)
        (given.schedule, given.warmup, given.saveEvery, given.keepLast, given.out) = (r.schedule, r.warmup, r.saveEvery, r.keepLast, out)
        guard let config else {
            guard corpus != nil, tokenizer != nil else { throw ValidationError("give --corpus and --tokenizer, or a run file with --config") }
            given.optimizer = try optimizers.config()
            given.blocks = try blockArguments.options(seed: initSeed, epoch: 1)
            given.blockEpoch = blockArguments.epochSteps
            try given.validate()
            return given
        }
        var run = try PretrainingRun.load(URL(fileURLWithPath: config), fallbacks: ["corpus": corpus, "tokenizer": tokenizer].compactMapValues { $0 })
        let unknown = typed.subtracting(Self.plain.keys).subtracting(RunArgumentParsing.blockFlags)
            .subtracting(RunArgumentParsing.optimizerFlags).subtracting(RunArgumentParsing.launchFlags)
        if let flag = unknown.sorted().first { throw ValidationError("\(flag) cannot be combined with --config: give it in the run file") }
        for flag in typed { Self.plain[flag]?(&run, given) }
        if !typed.isDisjoint(with: RunArgumentParsing.blockFlags) {
            var a = blockArguments
            if let base = run.blocks {
                if !typed.contains("--blocks") { a.blocks = base.level.rawValue }
                if !typed.contains("--block-patterns") && !base.patterns.isEmpty { a.blockPatterns = base.patterns.joined(separator: ",") }
                if !typed.contains("--block-schedule") { a.blockSchedule = base.schedule.rawValue }
                if !typed.contains("--block-steps") && base.schedule == .sequential { a.blockStepsText = run.blockEpoch ? "epoch" : String(base.stepsPerBlock) }
                if !typed.contains("--block-reinit") { a.blockReinit = base.reinit != nil }
            }
            run.blocks = try a.options(seed: run.initSeed, epoch: 1)
            run.blockEpoch = a.epochSteps
        }
        if !typed.isDisjoint(with: RunArgumentParsing.optimizerFlags) { run.optimizer = try optimizers.config(base: run.optimizer) }
        do { try run.validate() } catch let e as RunConfigError { throw RunConfigError("\(e.description) (in \(config) or on the command line)") }
        return run
    }

    func run() throws {
        let run = try RunArgumentParsing.runConfigErrors { try pretrainingRun(typed: RunArgumentParsing.typedOptions()) }
        let dir = try RunDirectory(out: run.out, resume: resume, overwrite: overwrite)
        defer { withExtendedLifetime(dir) {} }
        if case .finished(let progress) = dir.state { return print(dir.finishedNotice(progress)) }
        let backend = try device.backend()
        let session = try RunArgumentParsing.runConfigErrors { try run.prepare(in: dir, on: backend) { print($0) } }
        let lm = session.model, c = lm.config, optimizer = session.optimizer, trainer = session.trainer
        let start = run.initFrom.map { "from \($0)" } ?? "init seed \(run.initSeed), std \(run.initStd)"
        print("model: llama, \(c.numLayers) layers, hidden \(c.hiddenSize), \(c.numHeads) heads, vocab \(c.vocabSize): \(lm.weights.parameterCount) parameters (\(start)); \(backend.summary)")
        if !run.freeze.isEmpty {
            print("frozen (--freeze \(run.freeze.joined(separator: ","))): \(lm.weights.parameterCount - trainer.set.parameterCount) parameters; \(trainer.set.parameterCount) trainable")
        }
        print("optimizer: \(session.run.optimizer!); \(String(format: "%g", optimizer.meanForwardsPerStep)) forwards per step, state \(formatBytes(optimizer.stateBytes))")
        if let b = optimizer as? BlockwiseZO {
            print("blocks: \(b.blocks.count) (\(b.options.summary)): " + b.blocks.prefix(6).map(\.name).joined(separator: ", ") + (b.blocks.count > 6 ? ", …" : ""))
        }
        let summary = try runWithProgress(trainer, resume: dir.resuming) { interrupt, progress in try session.train(interrupt: interrupt, progress: progress) }
        try session.finish(summary)
        print(String(format: "held-out perplexity: %.2f before, %.2f after %d steps (best %.2f at step %d)",
                     summary.devBefore, summary.devAfter, summary.steps, summary.bestDev, summary.bestStep))
        print(String(format: "trained in %.0f s; peak %@ (ledger); run directory %@", summary.seconds,
                     formatBytes(trainer.stepPeakBytes), dir.url.path))
    }
}
