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
