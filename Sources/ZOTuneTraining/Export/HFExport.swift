import Foundation
import ZOTuneBackend
import ZOTuneModels

/// Writes a model in Hugging Face format — model.safetensors, config.json, tokenizer files — so
/// transformers loads the tuned weights. Each file goes through AtomicFile (temp + rename).
public enum HFExport {
    /// Safetensors bytes of `tensors` (name, tensor) in order: header JSON padded to 8 bytes.
    public static func safetensors(_ tensors: [(String, Tensor)], backend: any Backend, metadata: [String: String] = [:]) throws -> Data {
        var header = "{"
        var offset = 0
        var first = true
        if !metadata.isEmpty {
            let m = try JSONSerialization.data(withJSONObject: metadata, options: [.sortedKeys])
            header += "\"__metadata__\":" + String(decoding: m, as: UTF8.self)
            first = false
        }
        for (name, t) in tensors {
            let dtype: String
            switch t.dtype {
            case .f32: dtype = "F32"
            case .f16: dtype = "F16"
            case .bf16: dtype = "BF16"
            default: throw ModelError(file: "export", field: name, "cannot export a \(t.dtype) tensor")
            }
            let escaped = String(decoding: try JSONSerialization.data(withJSONObject: [name], options: []), as: UTF8.self).dropFirst().dropLast()
            header += (first ? "" : ",") + "\(escaped):{\"dtype\":\"\(dtype)\",\"shape\":\(t.shape),\"data_offsets\":[\(offset),\(offset + t.bytes)]}"
            first = false
            offset += t.bytes
        }
        header += "}"
        while header.utf8.count % 8 != 0 { header += " " }
        var data = Data()
        var len = UInt64(header.utf8.count).littleEndian
        data.append(Data(bytes: &len, count: 8))
        data.append(Data(header.utf8))
        data.reserveCapacity(data.count + offset)
        for (_, t) in tensors {
            var host = [UInt8](repeating: 0, count: t.bytes)
            host.withUnsafeMutableBytes { backend.copy(t, toHost: $0) }
            data.append(contentsOf: host)
        }
        try backend.checkErrors()  // a failed device's bytes are never written as weights
        return data
    }

    /// transformers' config.json for `c`.
    public static func configJSON(_ c: ModelConfig, dtype: DType) throws -> Data {
        var j: [String: Any] = ["vocab_size": c.vocabSize, "torch_dtype": dtype == .f32 ? "float32" : dtype == .bf16 ? "bfloat16" : "float16",
                                "tie_word_embeddings": c.tieWordEmbeddings]
        if let b = c.bosTokenId { j["bos_token_id"] = b }
        if let e = c.eosTokenId { j["eos_token_id"] = e }
        if let p = c.padTokenId { j["pad_token_id"] = p }
        j.merge(c.architecture.family.huggingFaceConfig(c)) { _, family in family }
        return Data(json(j, indent: "").utf8)
    }

    /// JSON of a config dictionary with floats kept floats: JSONSerialization writes 3.0 as 3,
    /// which transformers' strict config fields (Gemma 2's soft-caps) refuse as an int. Keys sorted.
    static func json(_ v: Any, indent: String) -> String {
        let inner = indent + "  "
        switch v {
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return d.isFinite ? "\(d)" : "null"
        case let f as Float: return f.isFinite ? "\(Double(f))" : "null"
        case let s as String:
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
                default: out.unicodeScalars.append(u)
                }
            }
            return out + "\""
        case let a as [Any]:
            return a.isEmpty ? "[]" : "[\n" + a.map { inner + json($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case let d as [String: Any]:
            return d.isEmpty ? "{}" : "{\n" + d.keys.sorted().map { inner + json($0, indent: inner) + ": " + json(d[$0]!, indent: inner) }
                .joined(separator: ",\n") + "\n\(indent)}"
        default: return "null"   // NSNull and anything unexpected
        }
    }

    /// Exports `model` into `dir`: every weight once under its checkpoint name (a tied head is
    /// left to the embedding, as transformers saves it), config.json, and the tokenizer files
    /// (copied from a Hugging Face checkpoint, or converted from GGUF metadata).
    public static func write(_ model: CausalLM, file: ModelFile, to dir: URL, metadata: [String: String] = [:]) throws {
        if model.weights.hasBlocks {
            throw ModelError(file: file.path, field: "dtype", "the weights are held in quantized blocks; export from an f32, bf16 or f16 load")
        }
        try FileError.createDirectory(dir)
        var seen = Set<Tensor.StorageKey>()
        var tensors: [(String, Tensor)] = []
        for name in model.weights.names {
            let t = model.weights[name]
            if seen.insert(t.storageKey).inserted { tensors.append((name, t)) }
        }
        let dtype = tensors.first { $0.1.rank == 2 }?.1.dtype ?? .f32
        try AtomicFile.write(try safetensors(tensors, backend: model.backend, metadata: metadata.merging(["format": "pt"]) { a, _ in a }),
                             to: dir.appendingPathComponent("model.safetensors"))
        try AtomicFile.write(try configJSON(model.config, dtype: dtype), to: dir.appendingPathComponent("config.json"))
        try writeTokenizerFiles(from: file, to: dir)
    }

    /// The tokenizer files of `file` into `dir`: copied from a Hugging Face checkpoint, or
    /// converted from GGUF metadata.
    public static func writeTokenizerFiles(from file: ModelFile, to dir: URL) throws {
        switch file.format {
        case .safetensors:
            let src = URL(fileURLWithPath: file.path).hasDirectoryPath ? URL(fileURLWithPath: file.path)
                : URL(fileURLWithPath: file.path).deletingLastPathComponent()
            for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"] {
                let from = src.appendingPathComponent(name)
                if let data = try? Data(contentsOf: from) { try AtomicFile.write(data, to: dir.appendingPathComponent(name)) }
            }
        case .gguf:
            try writeGGUFTokenizer(file: file, to: dir)
        }
    }
}
