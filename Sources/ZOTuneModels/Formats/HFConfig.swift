import Foundation
import ZOTuneBackend

extension ModelConfig {
    /// The `architectures` entries ZOTune runs, with the family each maps to.
    public static let supportedHuggingFaceArchitectures: [(name: String, architecture: Architecture)] = [
        ("OPTForCausalLM", .opt), ("GPT2LMHeadModel", .gpt2),
        ("LlamaForCausalLM", .llama), ("MistralForCausalLM", .llama), ("Qwen2ForCausalLM", .qwen2),
    ]

    /// Reads a Hugging Face `config.json` (transformers 4.x or 5.x layout). Defaults follow the
    /// transformers config classes where a field may be absent; shape fields are required.
    /// Special token ids outside [0, vocab) (some configs write -1) become nil.
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
        let (architecture, isMistral) = try c.architecture()
        let config: ModelConfig
        switch architecture {
        case .opt: config = try c.opt()
        case .gpt2: config = try c.gpt2()
        case .llama: config = try c.llama(isMistral: isMistral)
        case .qwen2: config = try c.qwen2()
        }
        try c.validate(config)
        return config.clampingTokenIds()
    }
}

/// Typed access to config.json fields; every error names the file and the field.
private struct HFConfigFields {
    let file: String
    let dict: [String: Any]

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

    func architecture() throws -> (Architecture, isMistral: Bool) {
        let supported = ModelConfig.supportedHuggingFaceArchitectures
        let names = supported.map(\.name).joined(separator: ", ")
        if has("architectures") {
            guard let list = dict["architectures"] as? [Any], let first = list.first as? String else {
                throw error("architectures", "must be a non-empty list of strings")
            }
            guard let match = supported.first(where: { $0.name == first }) else {
                throw error("architectures", "unsupported architecture \"\(first)\"; supported: \(names)")
            }
            return (match.architecture, first == "MistralForCausalLM")
        }
        let modelType = try string("model_type", default: "")
        switch modelType {
        case "opt": return (.opt, false)
        case "gpt2": return (.gpt2, false)
        case "llama": return (.llama, false)
        case "mistral": return (.llama, true)
        case "qwen2": return (.qwen2, false)
        case "": throw error("architectures", "missing (and no model_type); supported: \(names)")
        default: throw error("model_type", "unsupported model type \"\(modelType)\"; supported: opt, gpt2, llama, mistral, qwen2")
        }
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

    func opt() throws -> ModelConfig {
        let hidden = try int("hidden_size")
        let projDim = try int("word_embed_proj_dim", default: hidden)!
        guard try bool("layer_norm_elementwise_affine", default: true) else {
            throw error("layer_norm_elementwise_affine", "false is not supported")
        }
        guard try !bool("_remove_final_layer_norm", default: false) else {
            throw error("_remove_final_layer_norm", "true is not supported")
        }
        let bias = try bool("enable_bias", default: true)
        return ModelConfig(
            architecture: .opt, vocabSize: try int("vocab_size"), hiddenSize: hidden,
            numLayers: try int("num_hidden_layers"), numHeads: try int("num_attention_heads"),
            intermediateSize: try int("ffn_dim"), maxPositions: try int("max_position_embeddings"),
            normEps: 1e-5,  // OPT's LayerNorms use PyTorch's default
            activation: try activation("activation_function", default: "relu"),
            tieWordEmbeddings: try bool("tie_word_embeddings", default: true),
            attentionBias: bias, mlpBias: bias,
            doLayerNormBefore: try bool("do_layer_norm_before", default: true),
            wordEmbedProjDim: projDim == hidden ? nil : projDim,
            positionOffset: 2,
            bosTokenId: try tokenId("bos_token_id", default: 2), eosTokenId: try tokenId("eos_token_id", default: 2),
            padTokenId: try tokenId("pad_token_id", default: 1))
    }

    func gpt2() throws -> ModelConfig {
        let embd = try int("n_embd")
        guard try bool("scale_attn_weights", default: true) else {
            throw error("scale_attn_weights", "false is not supported")
        }
        guard try !bool("scale_attn_by_inverse_layer_idx", default: false) else {
            throw error("scale_attn_by_inverse_layer_idx", "true is not supported")
        }
        // Very old configs name the context length n_ctx.
        let positions = has("n_positions") || !has("n_ctx") ? try int("n_positions") : try int("n_ctx")
        return ModelConfig(
            architecture: .gpt2, vocabSize: try int("vocab_size"), hiddenSize: embd,
            numLayers: try int("n_layer"), numHeads: try int("n_head"),
            intermediateSize: try int("n_inner", default: 4 * embd)!, maxPositions: positions,
            normEps: try float("layer_norm_epsilon", default: 1e-5),
            activation: try activation("activation_function", default: "gelu_new"),
            tieWordEmbeddings: try bool("tie_word_embeddings", default: true),
            positionOffset: 0,
            bosTokenId: try tokenId("bos_token_id", default: 50256), eosTokenId: try tokenId("eos_token_id", default: 50256),
            padTokenId: try tokenId("pad_token_id", default: nil))
    }

    func llama(isMistral: Bool) throws -> ModelConfig {
        let maxPositions = try int("max_position_embeddings")
        if isMistral, let window = try int("sliding_window", default: nil), window < maxPositions {
            throw error("sliding_window", "sliding-window attention (\(window) < \(maxPositions) positions) is not supported")
        }
        let act = try activation("hidden_act", default: "silu")
        guard act == .silu else { throw error("hidden_act", "Llama's gated MLP is supported with silu only") }
        let (theta, scaling) = try rope()
        return ModelConfig(
            architecture: .llama, vocabSize: try int("vocab_size"), hiddenSize: try int("hidden_size"),
            numLayers: try int("num_hidden_layers"), numHeads: try int("num_attention_heads"),
            numKVHeads: try int("num_key_value_heads", default: nil), headDim: try int("head_dim", default: nil),
            intermediateSize: try int("intermediate_size"), maxPositions: maxPositions,
            normEps: try float("rms_norm_eps", default: 1e-6), activation: .silu,
            tieWordEmbeddings: try bool("tie_word_embeddings", default: false),
            ropeTheta: theta, ropeScaling: scaling,
            attentionBias: try bool("attention_bias", default: false), mlpBias: try bool("mlp_bias", default: false),
            positionOffset: 0,
            bosTokenId: try tokenId("bos_token_id", default: 1), eosTokenId: try tokenId("eos_token_id", default: 2),
            padTokenId: try tokenId("pad_token_id", default: nil))
    }

    /// Qwen2/Qwen2.5: Llama's fields; q/k/v always biased, o and the MLP never (the family's tensors).
    func qwen2() throws -> ModelConfig {
        if try bool("use_sliding_window", default: false) {
            throw error("use_sliding_window", "sliding-window attention is not supported yet")
        }
        var c = try llama(isMistral: false)
        c.architecture = .qwen2
        c.attentionBias = true
        c.mlpBias = false
        c.tieWordEmbeddings = try bool("tie_word_embeddings", default: false)
        c.normEps = try float("rms_norm_eps", default: 1e-6)
        return c
    }

    /// rope_theta and scaling: transformers 4 writes `rope_theta` and `rope_scaling` at the top
    /// level; transformers 5 folds both into `rope_parameters`.
    func rope() throws -> (Float, RopeScaling?) {
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
        default:
            throw error("\(key).rope_type", "unsupported rope type \"\(type)\" (default, linear, llama3)")
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
