import Foundation
import ZOTuneBackend

extension ModelConfig {
    /// The `architectures` entries ZOTune runs, with the family each maps to.
    public static var supportedHuggingFaceArchitectures: [(name: String, architecture: Architecture)] {
        Architecture.allCases.flatMap { a in a.family.huggingFaceClasses.map { ($0, a) } }
    }

    /// Reads a Hugging Face `config.json` (transformers 4.x or 5.x layout): the family named by
    /// `architectures` (else `model_type`) parses it. Defaults follow the transformers config
    /// classes where a field may be absent; shape fields are required. Special token ids outside
    /// [0, vocab) (some configs write -1) become nil.
    public static func fromHuggingFace(configJSON url: URL) throws -> ModelConfig {
        let file = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ModelError(file: file, field: "config.json", "cannot read: \(error.localizedDescription)")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ModelError(file: file, field: "config.json", "malformed JSON: \(error.localizedDescription)")
        }
        guard let dict = object as? [String: Any] else {
            throw ModelError(file: file, field: "config.json", "not a JSON object")
        }
        let c = HFConfigFields(file: file, dict: dict)
        let config = try c.architecture().family.config(huggingFace: c)
        try c.validate(config)
        return config.clampingTokenIds()
    }
}

/// Typed access to config.json fields; every error names the file and the field. The families
/// (Architectures/) read their fields through it.
public struct HFConfigFields {
    let file: String
    let dict: [String: Any]

    init(file: String, dict: [String: Any]) {
        self.file = file
        self.dict = dict
    }

    func error(_ field: String, _ message: String) -> ModelError {
        ModelError(file: file, field: field, message)
    }

    /// Present and not JSON null.
    func has(_ key: String) -> Bool {
        guard let v = dict[key] else { return false }
        return !(v is NSNull)
    }

    func int(_ key: String) throws -> Int {
        guard has(key) else { throw error(key, "missing required field") }
        guard let v = SafetensorsFile.jsonInt(dict[key]!) else { throw error(key, "must be an integer") }
        return v
    }

    func int(_ key: String, default value: Int?) throws -> Int? {
        has(key) ? try int(key) : value
    }

    func float(_ key: String, default value: Float, in object: [String: Any]? = nil, prefix: String = "") throws -> Float {
        let d = object ?? dict
        guard let v = d[key], !(v is NSNull) else { return value }
        guard let n = v as? NSNumber, !SafetensorsFile.jsonIsBool(n) else {
            throw error(prefix + key, "must be a number")
        }
        return n.floatValue
    }

    func bool(_ key: String, default value: Bool) throws -> Bool {
        guard has(key) else { return value }
        guard let n = dict[key] as? NSNumber, SafetensorsFile.jsonIsBool(n) else {
            throw error(key, "must be true or false")
        }
        return n.boolValue
    }

    func string(_ key: String, default value: String) throws -> String {
        guard has(key) else { return value }
        guard let s = dict[key] as? String else { throw error(key, "must be a string") }
        return s
    }

    /// A token id; lists (several EOS ids) give their first entry.
    func tokenId(_ key: String, default value: Int?) throws -> Int? {
        guard let v = dict[key] else { return value }
        if v is NSNull { return nil }
        if let list = v as? [Any] {
            guard let first = list.first else { return nil }
            guard let id = SafetensorsFile.jsonInt(first) else { throw error(key, "must be an integer or a list of integers") }
            return id
        }
        guard let id = SafetensorsFile.jsonInt(v) else { throw error(key, "must be an integer or a list of integers") }
        return id
    }

    func architecture() throws -> Architecture {
        let names = ModelConfig.supportedHuggingFaceArchitectures.map(\.name).joined(separator: ", ")
        if has("architectures") {
            guard let list = dict["architectures"] as? [Any], let first = list.first as? String else {
                throw error("architectures", "must be a non-empty list of strings")
            }
            guard let a = Architecture(huggingFaceClass: first) else {
                throw error("architectures", "unsupported architecture \"\(first)\"; supported: \(names)")
            }
            return a
        }
        let modelType = try string("model_type", default: "")
        if modelType.isEmpty { throw error("architectures", "missing (and no model_type); supported: \(names)") }
        guard let a = Architecture(modelType: modelType) else {
            let types = Architecture.allCases.flatMap { $0.family.modelTypes }.joined(separator: ", ")
            throw error("model_type", "unsupported model type \"\(modelType)\"; supported: \(types)")
        }
        return a
    }

    func activation(_ key: String, default value: String) throws -> Activation {
        let name = try string(key, default: value)
        switch name {
        case "relu": return .relu
        case "silu", "swish": return .silu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": return .geluTanh
        case "gelu": return .geluErf
        default: throw error(key, "unsupported activation \"\(name)\" (relu, silu, gelu, gelu_new)")
        }
    }

    /// The share of head_dim that RoPE rotates: `partial_rotary_factor` at the top level (Phi-3's
    /// config.json) or inside `rope_parameters` (where transformers 5 moves it); 1 when absent.
    func partialRotaryFactor(default fallback: Float = 1) throws -> Float {
        var value = try float("partial_rotary_factor", default: fallback)
        var key = "partial_rotary_factor"
        if !has(key), let p = dict["rope_parameters"] as? [String: Any], p["partial_rotary_factor"] != nil {
            value = try float(key, default: fallback, in: p, prefix: "rope_parameters.")
            key = "rope_parameters.partial_rotary_factor"
        }
        guard value > 0, value <= 1 else { throw error(key, "must be in (0, 1] (got \(value))") }
        return value
    }

    /// `sliding_window` of a config whose attention slides: Mistral and Phi-3 slide every layer
    /// when it is set below the context; Qwen2/3 only with `use_sliding_window`, and then the layers
    /// `layer_types` names (default: from `max_window_layers` on). nil: no window.
    func slidingWindow(flag: String?, maxPositions: Int, layers: Int) throws -> (Int, [Bool]?)? {
        if let flag, try !bool(flag, default: false) { return nil }
        guard let w = try int("sliding_window", default: nil) else { return nil }
        guard w > 0 else { throw error("sliding_window", "must be positive (got \(w))") }
        guard flag != nil else { return w < maxPositions ? (w, nil) : nil }
        let first = try int("max_window_layers", default: 28)!
        return (w, try slidingLayers(layers) { $0 >= first })
    }

    /// Which of `layers` slide: `layer_types` when the config lists them, else the family's rule.
    func slidingLayers(_ layers: Int, otherwise rule: (Int) -> Bool) throws -> [Bool] {
        guard has("layer_types") else { return (0..<layers).map(rule) }
        guard let types = dict["layer_types"] as? [String], types.count == layers,
              types.allSatisfy({ $0 == "sliding_attention" || $0 == "full_attention" }) else {
            throw error("layer_types", "must list \(layers) entries of \"sliding_attention\" or \"full_attention\"")
        }
        return types.map { $0 == "sliding_attention" }
    }

    /// The window of a family whose sliding layers always slide (Gemma 2/3): `sliding_window`,
    /// positive, else the family's default.
    func positiveWindow(default value: Int) throws -> Int {
        let w = try int("sliding_window", default: value)!
        guard w > 0 else { throw error("sliding_window", "must be positive (got \(w))") }
        return w
    }

    /// rope_theta and scaling: transformers 4 writes `rope_theta` and `rope_scaling` at the top
    /// level; transformers 5 folds both into `rope_parameters`.
    /// `longrope` needs the context lengths and the rotary width its factor lists must match.
    func rope(maxPositions: Int = 0, rotaryDim: Int = 0) throws -> (Float, RopeScaling?) {
        var theta = try float("rope_theta", default: 10000)
        var params: [String: Any]?
        var key = ""
        for k in ["rope_parameters", "rope_scaling"] where has(k) {
            guard let d = dict[k] as? [String: Any] else { throw error(k, "must be an object") }
            params = d
            key = k
            break
        }
        guard let p = params else { return (theta, nil) }
        if let v = p["rope_theta"], !(v is NSNull) {
            theta = try float("rope_theta", default: theta, in: p, prefix: key + ".")
        }
        let type: String
        switch p["rope_type"] ?? p["type"] {  // "type" in older configs
        case .none: type = "default"
        case .some(let v) where v is NSNull: type = "default"
        case .some(let s as String): type = s
        case .some: throw error("\(key).rope_type", "must be a string")
        }
        func factor(_ name: String) throws -> Float {
            guard let v = p[name], !(v is NSNull) else { throw error("\(key).\(name)", "missing required field") }
            return try float(name, default: 0, in: p, prefix: key + ".")
        }
        switch type {
        case "default":
            return (theta, nil)
        case "linear":
            return (theta, .linear(factor: try factor("factor")))
        case "llama3":
            let (f, low, high) = (try factor("factor"), try factor("low_freq_factor"), try factor("high_freq_factor"))
            guard let orig = p["original_max_position_embeddings"], let origInt = SafetensorsFile.jsonInt(orig) else {
                throw error("\(key).original_max_position_embeddings", "missing or not an integer")
            }
            return (theta, .llama3(factor: f, lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: origInt))
        case "longrope", "su":
            func factors(_ name: String) throws -> [Float] {
                guard let list = p[name] as? [Any], list.count == rotaryDim / 2 else {
                    throw error("\(key).\(name)", "must list \(rotaryDim / 2) numbers (one per rotary frequency)")
                }
                return try list.map {
                    guard let n = $0 as? NSNumber, !SafetensorsFile.jsonIsBool(n), n.floatValue > 0 else {
                        throw error("\(key).\(name)", "must list positive numbers")
                    }
                    return n.floatValue
                }
            }
            // Phi-3 writes the pre-training context at the top level; transformers 5 also copies it in.
            let orig = try int("original_max_position_embeddings", default: nil)
                ?? p["original_max_position_embeddings"].flatMap(SafetensorsFile.jsonInt)
            guard let orig, orig > 0 else {
                throw error("original_max_position_embeddings", "missing or not positive (needed by longrope)")
            }
            // transformers: factor = max / original (unless given); attention factor
            // sqrt(1 + ln(factor) / ln(original)) when not given and factor > 1.
            let factor = p["factor"].flatMap { $0 as? NSNumber }.map(\.doubleValue) ?? Double(maxPositions) / Double(orig)
            let attention: Double
            if let a = p["attention_factor"] as? NSNumber, !(p["attention_factor"] is NSNull) {
                attention = a.doubleValue
            } else {
                attention = factor <= 1 ? 1 : (1 + Foundation.log(factor) / Foundation.log(Double(orig))).squareRoot()
            }
            return (theta, .longrope(short: try factors("short_factor"), long: try factors("long_factor"),
                                     originalMaxPositions: orig, attentionFactor: Float(attention)))
        default:
            throw error("\(key).rope_type", "unsupported rope type \"\(type)\" (default, linear, llama3, longrope)")
        }
    }

    /// Shape consistency the architectures rely on.
    func validate(_ c: ModelConfig) throws {
        let (layersKey, headsKey, hiddenKey) = c.architecture == .gpt2
            ? ("n_layer", "n_head", "n_embd") : ("num_hidden_layers", "num_attention_heads", "hidden_size")
        for (key, value) in [("vocab_size", c.vocabSize), (hiddenKey, c.hiddenSize), (layersKey, c.numLayers),
                             (headsKey, c.numHeads), ("max_position_embeddings", c.maxPositions),
                             ("num_key_value_heads", c.numKVHeads), ("head_dim", c.headDim)] where value <= 0 {
            throw error(key, "must be positive (got \(value))")
        }
        if c.intermediateSize <= 0 {
            throw error(c.architecture == .opt ? "ffn_dim" : c.architecture == .gpt2 ? "n_inner" : "intermediate_size",
                        "must be positive (got \(c.intermediateSize))")
        }
        if !has("head_dim") || c.architecture.family.hasLearnedPositions, c.hiddenSize % c.numHeads != 0 {
            throw error(headsKey, "\(c.numHeads) heads do not divide hidden size \(c.hiddenSize)")
        }
        if c.numHeads % c.numKVHeads != 0 {
            throw error("num_key_value_heads", "\(c.numKVHeads) KV heads do not divide \(c.numHeads) attention heads")
        }
        if let proj = c.wordEmbedProjDim, proj <= 0 {
            throw error("word_embed_proj_dim", "must be positive (got \(proj))")
        }
    }
}

extension ModelConfig {
    /// Drops special token ids outside the vocabulary (configs sometimes write -1 for "none").
    fileprivate func clampingTokenIds() -> ModelConfig {
        var c = self
        let vocab = vocabSize
        let ok = { (id: Int?) -> Int? in id.flatMap { $0 >= 0 && $0 < vocab ? $0 : nil } }
        c.bosTokenId = ok(c.bosTokenId)
        c.eosTokenId = ok(c.eosTokenId)
        c.padTokenId = ok(c.padTokenId)
        return c
    }
}
