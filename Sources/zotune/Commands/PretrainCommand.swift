import ArgumentParser
import Foundation
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// The model a pre-training run builds: a config.json, or the shape flags.
struct LlamaShapeArguments: ParsableArguments {
    @Option(help: "A Hugging Face config.json of a Llama to build (instead of the shape options below).")
    var config: String?
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

    func validate() throws {
        for (name, value) in [("--layers", layers), ("--hidden", hidden), ("--heads", heads), ("--kv-heads", kvHeads ?? 1),
                              ("--intermediate", intermediate ?? 1), ("--max-positions", maxPositions)] where value < 1 {
            throw ValidationError("\(name) must be at least 1 (got \(value))")
        }
        // The weights must fit this machine: 4 bytes × layers × (4·hidden² + 3·hidden·intermediate),
        // the matrices alone. In Double: Int.max options would overflow the product.
        let (h, l) = (Double(hidden), Double(layers))
        let mlp = intermediate.map(Double.init) ?? 3 * h
        let memory = Double(ProcessInfo.processInfo.physicalMemory)
        if 4 * l * (4 * h * h + 3 * h * mlp) > memory {
            throw ValidationError("--layers \(layers) × --hidden \(hidden) (--intermediate \(intermediate.map(String.init) ?? "default")): " +
                                  "the weights exceed this machine's \(formatBytes(Int(memory))) of memory")
        }
    }

    func modelConfig(tokenizer: any Tokenizer) throws -> ModelConfig {
        if let config {
            let c = try ModelConfig.fromHuggingFace(configJSON: URL(fileURLWithPath: config))
            guard c.architecture == .llama else { throw ValidationError("\(config): pre-training builds Llama models, not \(c.architecture.rawValue)") }
            guard c.vocabSize >= tokenizer.vocabSize else {
                throw ValidationError("\(config): vocab_size \(c.vocabSize) is smaller than the tokenizer's \(tokenizer.vocabSize) ids")
            }
            return c
        }
        return try LlamaShape(layers: layers, hidden: hidden, heads: heads, kvHeads: kvHeads, intermediate: intermediate,
                              maxPositions: maxPositions, tieEmbeddings: !untied).config(for: tokenizer)
    }
}

struct Pretrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pre-train a Llama from seeded random weights on a text corpus with forward passes only (LM loss; any ZO optimizer, block-wise or not).")

    @Option(help: "Text corpus: a SQuAD v1.1 JSON file (its paragraphs, by article) or a UTF-8 text file (documents separated by blank lines).")
    var corpus: String
    @Option(name: .customLong("held-out-every"), help: "Every Nth article (or document) is held out for perplexity.")
    var heldOutEvery = 10
    @Option(help: "Tokenizer: a tokenizer.json, or a model (GGUF file or HF directory) whose tokenizer to use; its vocabulary sizes the model.")
    var tokenizer: String
    @OptionGroup(title: "Model") var shape: LlamaShapeArguments
    @Option(name: .customLong("init-seed"), help: "Seed of the random initial weights.")
    var initSeed: UInt64 = 0
    @Option(name: .customLong("init-std"), help: "Standard deviation of the initial matrices (transformers' initializer_range).")
    var initStd: Float = 0.02
    @Option(name: .customLong("seq-len"), help: "Tokens per training window (contiguous text).")
    var seqLen = 128
    @Option(name: .customLong("data-seed"), help: "Seed of the window order.")
    var dataSeed: UInt64 = 0
    @OptionGroup var device: DeviceOptions
    @OptionGroup(title: "Run (--eval-count: held-out windows per evaluation)") var runArguments: RunArguments
    @OptionGroup var optimizers: OptimizerArgumentGroups
    @OptionGroup(title: "Block-wise ZO") var blockArguments: BlockArguments
    @Option(help: "Run directory: init/ (the random model), metrics.jsonl, trajectory.zot, loss.svg, model/.")
    var out: String?
    @Option(help: "Resume the interrupted run in this directory (same options; another value of an option that changes the result is refused).")
    var resume: String?
    @Flag(help: "Replace the run that --out DIR holds (init/, trajectory, metrics, model/, summary) instead of refusing to.")
    var overwrite = false

    func validate() throws {
        // Pre-training's loss is the LM loss of each window, and its windows are --seq-len tokens.
        if runArguments.objective != nil { throw ValidationError("--objective is a train option: pretrain minimises the LM loss of each window") }
        if runArguments.maxLength != nil { throw ValidationError("--max-length is a train option: pretrain's windows are --seq-len tokens") }
        // 1 would hold out every article and train on none.
        guard heldOutEvery >= 2 else { throw ValidationError("--held-out-every must be at least 2 (got \(heldOutEvery))") }
        guard seqLen >= 1 else { throw ValidationError("--seq-len must be at least 1 (got \(seqLen))") }
        guard seqLen <= shape.maxPositions || shape.config != nil else {
            throw ValidationError("--seq-len \(seqLen) exceeds --max-positions \(shape.maxPositions)")
        }
    }

    func run() throws {
        let config = try optimizers.config()
        let text = try TextCorpus.load(corpus, heldOutEvery: heldOutEvery)
        guard !text.heldOut.isEmpty else {
            throw ValidationError("--held-out-every \(heldOutEvery) holds out nothing of \(corpus) (\(text.split)); give a smaller value")
        }
        var options = try runArguments.options(task: "pretrain:" + text.name, dataSeed: dataSeed)
        guard initStd > 0 && initStd.isFinite else { throw ValidationError("--init-std must be positive") }
        let initOptions = InitOptions(seed: initSeed, std: initStd)
        // Re-initialised blocks draw from the model's own init options.
        var blocks = try blockArguments.options(seed: initSeed)
        if blocks?.reinit != nil { blocks?.reinit = initOptions }
        let dir = try RunDirectory(out: out, resume: resume, overwrite: overwrite)
        defer { withExtendedLifetime(dir) {} }
        if case .finished(let progress) = dir.state { return print(dir.finishedNotice(progress)) }
        let runDir = dir.url
        let tok = try InitCheckpoint.tokenizer(tokenizer)
        let modelConfig = try shape.modelConfig(tokenizer: tok)
        let initDir = runDir.appendingPathComponent("init")
        if !FileManager.default.fileExists(atPath: initDir.appendingPathComponent("model.safetensors").path) {
            if dir.resuming { throw ValidationError("\(initDir.path): missing; the run cannot be resumed without its initial model") }
            try InitCheckpoint.write(config: modelConfig, init: initOptions, tokenizerSource: tokenizer, to: initDir)
        }
        let file = try ModelFile.open(initDir.path)
        guard file.config == modelConfig else { throw ValidationError("\(initDir.path)/config.json differs from the requested model; use the run's options") }
        let backend = try device.backend()
        let lm = try file.load(on: backend)
        let data = try CorpusData(corpus: text, tokenizer: tok, model: lm, length: seqLen, batchSize: options.batchSize,
                                  dataSeed: dataSeed, evalWindows: options.evalCount)
        options.maxLength = seqLen
        print("corpus: \(text.name): \(text.split); \(data.train.count) training windows of \(seqLen) tokens (\(data.trainTokens) tokens), \(data.heldOut.count) held-out windows")
        let base = BaseCheckpoint(path: initDir.path, hash: try checkpointHash(initDir.path), format: "hf", dtype: "f32", precision: lm.precision.rawValue)
        let optimizer: any ZOOptimizer
        do {
            optimizer = try blocks == nil ? config.make(model: lm) : config.make(set: try config.trainableSet(lm), backend: backend, blocks: blocks)
        } catch let e as BlockError { throw ValidationError(e.description) }
        let trainer = try Trainer(model: lm, data: data, options: options, optimizer: optimizer, runDir: runDir, base: base)
        trainer.dataFingerprint = DataFingerprint(options: ["--corpus": text.name, "--held-out-every": "\(heldOutEvery)", "--seq-len": "\(seqLen)"],
                                                  contentHash: data.contentHash)
        print("model: llama, \(modelConfig.numLayers) layers, hidden \(modelConfig.hiddenSize), \(modelConfig.numHeads) heads, vocab \(modelConfig.vocabSize): \(lm.weights.parameterCount) parameters (init seed \(initSeed), std \(initStd)); \(backend.summary)")
        print("optimizer: \(config); \(String(format: "%g", optimizer.meanForwardsPerStep)) forwards per step, state \(formatBytes(optimizer.stateBytes))")
        if let b = optimizer as? BlockwiseZO { print("blocks: \(b.blocks.count) (\(b.options.summary))") }
        let summary = try runWithProgress(trainer, resume: dir.resuming)
        try HFExport.write(lm, file: file, to: runDir.appendingPathComponent("model"),
                           metadata: ["zotune_trajectory": "trajectory.zot", "zotune_step": String(summary.bestStep)])
        print(String(format: "held-out perplexity: %.2f before, %.2f after %d steps (best %.2f at step %d)",
                     summary.devBefore, summary.devAfter, summary.steps, summary.bestDev, summary.bestStep))
        print(String(format: "trained in %.0f s; peak %@ (ledger); run directory %@", summary.seconds,
                     formatBytes(trainer.stepPeakBytes), runDir.path))
        let json: [String: Any] = ["perplexity_before": summary.devBefore, "perplexity_after": summary.devAfter,
                                   "best_step": summary.bestStep, "best_perplexity": summary.bestDev, "seconds": summary.seconds,
                                   "parameters": lm.weights.parameterCount, "train_tokens": data.trainTokens,
                                   "forwards_per_step": optimizer.meanForwardsPerStep, "optimizer_config": config.description,
                                   "zo_peak_bytes": trainer.stepPeakBytes, "inference_peak_bytes": trainer.forwardPeakBytes]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]), to: runDir.appendingPathComponent("summary.json"))
        try trainer.markFinished()
    }
}
