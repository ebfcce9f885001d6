import Foundation
import ZOTuneBackend
import ZOTuneModels

/// The size of a Llama pre-trained from scratch (`zotune pretrain`), when no config.json is given.
public struct LlamaShape: Sendable, Equatable, Codable {
    public var layers: Int
    public var hidden: Int
    public var heads: Int
    public var kvHeads: Int
    public var intermediate: Int
    public var maxPositions: Int
    public var tieEmbeddings: Bool

    public init(layers: Int = 6, hidden: Int = 256, heads: Int = 4, kvHeads: Int? = nil, intermediate: Int? = nil,
                maxPositions: Int = 256, tieEmbeddings: Bool = true) {
        self.layers = layers
        self.hidden = hidden
        self.heads = heads
        self.kvHeads = kvHeads ?? heads
        // Llama's 8/3 · hidden, rounded up to a multiple of 16.
        self.intermediate = intermediate ?? (8 * hidden / 3 + 15) / 16 * 16
        self.maxPositions = maxPositions
        self.tieEmbeddings = tieEmbeddings
    }

    /// The model config for a tokenizer's vocabulary (RMSNorm ε 1e-5, RoPE θ 10 000, no biases).
    public func config(for tokenizer: any Tokenizer) throws -> ModelConfig {
        guard layers >= 1, hidden >= 2, heads >= 1, kvHeads >= 1, intermediate >= 1, maxPositions >= 2 else {
            throw ModelError(file: "model shape", field: "size", "layers, hidden, heads, kv heads, intermediate and positions must be positive")
        }
        guard hidden % heads == 0, (hidden / heads) % 2 == 0 else {
            throw ModelError(file: "model shape", field: "heads", "hidden \(hidden) must split into \(heads) heads of an even width (RoPE)")
        }
        guard heads % kvHeads == 0 else { throw ModelError(file: "model shape", field: "kv-heads", "\(heads) heads are not a multiple of \(kvHeads) KV heads") }
        return ModelConfig(architecture: .llama, vocabSize: tokenizer.vocabSize, hiddenSize: hidden, numLayers: layers, numHeads: heads,
                           numKVHeads: kvHeads, intermediateSize: intermediate, maxPositions: maxPositions, normEps: 1e-5,
                           activation: .silu, tieWordEmbeddings: tieEmbeddings, attentionBias: false, mlpBias: false,
                           bosTokenId: tokenizer.bosId.map(Int.init), eosTokenId: tokenizer.eosId.map(Int.init),
                           padTokenId: tokenizer.padId.map(Int.init))
    }
}

/// A from-scratch model as a Hugging Face checkpoint directory: config.json, model.safetensors
/// (ModelInit's seeded values, f32) and the tokenizer's files. Written once at the start of a
/// pre-training run (`RUN/init/`), it is the run's base: its hash is in the trajectory, replay and
/// keep-best reload it, and transformers loads it as it loads the trained model.
public enum InitCheckpoint {
    /// `tokenizerSource`: a tokenizer.json file, or a model (GGUF file or HF directory) whose
    /// tokenizer the new model uses.
    public static func write(config: ModelConfig, init initOptions: InitOptions, tokenizerSource: String, to dir: URL) throws {
        guard config.architecture == .llama else {
            throw ModelError(file: dir.path, field: "architecture", "pre-training builds Llama models; got \(config.architecture.rawValue)")
        }
        try FileError.createDirectory(dir)
        let backend = KernelBackend.cpu()
        var tensors: [(String, Tensor)] = []
        for (name, shape) in CausalLM.storedTensorShapes(config) {
            let t = try backend.allocate(shape, tag: .weights)
            ModelInit.fill(t, name: name, options: initOptions, backend: backend)
            tensors.append((name, t))
        }
        try AtomicFile.write(try HFExport.safetensors(tensors, backend: backend, metadata: ["format": "pt", "zotune_init_seed": String(initOptions.seed),
                                                                                             "zotune_init_std": String(initOptions.std)]),
                             to: dir.appendingPathComponent("model.safetensors"))
        var json = try JSONSerialization.jsonObject(with: try HFExport.configJSON(config, dtype: .f32)) as! [String: Any]
        json["initializer_range"] = Double(initOptions.std)
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .prettyPrinted]),
                             to: dir.appendingPathComponent("config.json"))
        try writeTokenizer(from: tokenizerSource, to: dir)
    }

    /// The config of a checkpoint to start a run from (`--init-from DIR`): a directory with
    /// config.json and one model.safetensors, a Llama, its vocabulary covering the tokenizer's ids.
    /// Anything else is one line naming --init-from and the cause.
    public static func checkSource(_ path: String, tokenizer: any Tokenizer) throws -> ModelConfig {
        func fail(_ cause: String) -> RunConfigError { RunConfigError("--init-from \(path): \(cause)") }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw fail("no such directory") }
        guard isDir.boolValue else { throw fail("not a directory (give a Hugging Face checkpoint directory: config.json + model.safetensors)") }
        let dir = URL(fileURLWithPath: path)
        for name in ["config.json", "model.safetensors"] where !FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) {
            let sharded = FileManager.default.fileExists(atPath: dir.appendingPathComponent("model.safetensors.index.json").path)
            throw fail("no \(name)" + (sharded && name == "model.safetensors" ? " (a sharded checkpoint: save it as one file)" : "") +
                       " (a Hugging Face checkpoint directory holds config.json and model.safetensors)")
        }
        let c: ModelConfig
        do { c = try ModelConfig.fromHuggingFace(configJSON: dir.appendingPathComponent("config.json")) } catch {
            throw fail("config.json: \(error)")
        }
        guard c.architecture == .llama else { throw fail("a \(c.architecture.rawValue) checkpoint; pre-training builds Llama models") }
        guard c.vocabSize >= tokenizer.vocabSize else {
            throw fail("vocab_size \(c.vocabSize) is smaller than the tokenizer's \(tokenizer.vocabSize) ids")
        }
        return c
    }

    /// Copies a checkpoint (`checkSource`'s) to `dir` as the run's base: config.json and
    /// model.safetensors byte for byte (so `dir` has the source's content hash), the tokenizer's
    /// files from `tokenizerSource`. Written beside `dir` and renamed into place, so an interrupted
    /// copy never leaves a half base.
    public static func copy(from source: String, tokenizerSource: String, to dir: URL) throws {
        let fm = FileManager.default
        let partial = dir.deletingLastPathComponent().appendingPathComponent(dir.lastPathComponent + ".partial")
        if fm.fileExists(atPath: partial.path) { try fm.removeItem(at: partial) }
        try FileError.createDirectory(partial)
        let src = URL(fileURLWithPath: source)
        for name in ["config.json", "model.safetensors"] {
            do { try fm.copyItem(at: src.appendingPathComponent(name), to: partial.appendingPathComponent(name)) } catch {
                throw FileError(path: partial.appendingPathComponent(name).path, cause: FileError.cause(of: error) ?? "cannot be copied")
            }
        }
        try writeTokenizer(from: tokenizerSource, to: partial)
        if fm.fileExists(atPath: dir.path) { try fm.removeItem(at: dir) }
        try fm.moveItem(at: partial, to: dir)
    }

    static func writeTokenizer(from tokenizerSource: String, to dir: URL) throws {
        if tokenizerSource.lowercased().hasSuffix(".json") {
            guard let data = FileManager.default.contents(atPath: tokenizerSource) else {
                throw ModelError(file: tokenizerSource, field: "file", "cannot read the tokenizer")
            }
            try AtomicFile.write(data, to: dir.appendingPathComponent("tokenizer.json"))
        } else {
            try HFExport.writeTokenizerFiles(from: try ModelFile.open(tokenizerSource), to: dir)
        }
    }

    /// The tokenizer of `source` (a tokenizer.json file, or a model that carries one).
    public static func tokenizer(_ source: String) throws -> any Tokenizer {
        if source.lowercased().hasSuffix(".json") { return try BPETokenizer(tokenizerJSON: URL(fileURLWithPath: source)) }
        return try ModelFile.open(source).requireTokenizer()
    }
}
