import Foundation
import ZOTuneBackend

/// A checkpoint opened from a user's path: a GGUF file, or a Hugging Face directory / safetensors
/// file with config.json (and tokenizer.json when present).
public struct ModelFile: Sendable {
    public enum Format: String, Sendable { case gguf, safetensors }

    public let path: String
    public let format: Format
    public let config: ModelConfig
    public let reader: CheckpointReader
    public let tokenizer: (any Tokenizer)?

    public static func open(_ path: String) throws -> ModelFile {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelError(file: path, field: "path", "no such file or directory")
        }
        if !isDir.boolValue && path.lowercased().hasSuffix(".gguf") {
            let gguf = try GGUFFile(path: path)
            let tokenizer = try BPETokenizer(gguf: try gguf.tokenizerData(), file: path)
            return ModelFile(path: path, format: .gguf, config: try gguf.modelConfig(), reader: gguf, tokenizer: tokenizer)
        }
        let hf = try HFCheckpoint(path: path)
        let tokenizer = try hf.tokenizerURL.map { try BPETokenizer(tokenizerJSON: $0) }
        return ModelFile(path: path, format: .safetensors, config: hf.config, reader: hf, tokenizer: tokenizer)
    }

    /// This checkpoint with `--sliding-window N` applied (ModelConfig.overridingSlidingWindow).
    public func overridingSlidingWindow(_ n: Int?) throws -> ModelFile {
        guard n != nil else { return self }
        return ModelFile(path: path, format: format, config: try config.overridingSlidingWindow(n, file: path), reader: reader,
                         tokenizer: tokenizer)
    }

    /// The tokenizer, or an error naming the checkpoint when it ships none.
    public func requireTokenizer() throws -> any Tokenizer {
        guard let tokenizer else {
            throw ModelError(file: path, field: "tokenizer", "the checkpoint has no tokenizer (tokenizer.json next to config.json, or GGUF tokenizer metadata)")
        }
        return tokenizer
    }

    /// Loads the weights onto `backend`; `keepBlocks` keeps a GGUF file's quantized matrices as stored.
    public func load(on backend: any Backend, dtype: DType = .f32, keepBlocks: Bool = false, precision: GemmPrecision = .f32) throws -> CausalLM {
        if keepBlocks && format != .gguf {
            throw ModelError(file: path, field: "dtype", "gguf storage keeps a GGUF file's quantized blocks; this checkpoint is \(format.rawValue)")
        }
        return try CausalLM(config: config, reader: reader, backend: backend, dtype: dtype, keepBlocks: keepBlocks, precision: precision)
    }

    /// Parameters stored in the checkpoint (a tied head is not stored, so counts once).
    public var parameterCount: Int { reader.tensors.values.reduce(0) { $0 + $1.count } }
}

public extension ModelConfig {
    /// `--sliding-window N`: the window a file cannot carry (llama.cpp's converter drops Mistral's
    /// and Qwen2's, and runs them with full attention), so that every layer attends to N keys, itself
    /// included; 0 = none. nil leaves the config as it is. It applies to the families whose
    /// attention slides by config (Llama-style files, which Mistral's GGUF is, Mistral, Qwen2/3,
    /// Phi-3) when the file states no window; a file that states one takes only that value (then
    /// nothing changes), and N ≥ the context slides nothing. Errors name `file` and the option.
    func overridingSlidingWindow(_ n: Int?, file: String) throws -> ModelConfig {
        guard let n else { return self }
        let option = "--sliding-window"
        guard n >= 0 else { throw ModelError(file: file, field: option, "must be 0 (no window) or a positive number of keys (got \(n))") }
        if let stated = slidingWindow {
            guard n == stated else {
                throw ModelError(file: file, field: option, "\(n) differs from the window of \(stated) keys the file states: give \(stated) or leave the option out")
            }
            return self
        }
        let slides: Set<Architecture> = [.llama, .mistral, .qwen2, .qwen3, .phi3]
        guard slides.contains(architecture) else {
            if n == 0 { return self }
            throw ModelError(file: file, field: option, "\(architecture.rawValue) models have no sliding-window attention (it applies to llama, mistral, qwen2, qwen3 and phi3)")
        }
        guard n > 0 else { return self }
        var c = self
        c.slidingWindow = n
        c.slidingLayers = nil  // every layer, as Mistral and Phi-3 slide
        return c
    }
}
