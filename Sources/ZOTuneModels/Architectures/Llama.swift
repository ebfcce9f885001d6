import ZOTuneBackend

/// Llama and the families that share its layer (Mistral without a sliding window, SmolLM2,
/// Llama 3 with its rope scaling): RMSNorm before each sublayer, q/k/v/o with optional biases,
/// RoPE, SwiGLU MLP.
public enum Llama: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: "model.", layers: "layers",
        perLayer: [(.attnNorm, "input_layernorm"), (.q, "self_attn.q_proj"), (.k, "self_attn.k_proj"), (.v, "self_attn.v_proj"),
                   (.o, "self_attn.o_proj"), (.mlpNorm, "post_attention_layernorm"),
                   (.gate, "mlp.gate_proj"), (.up, "mlp.up_proj"), (.down, "mlp.down_proj")],
        topLevel: [(.embed, "model.embed_tokens"), (.finalNorm, "model.norm"), (.head, "lm_head")],
        aliasRoots: [])
    public static let huggingFaceClasses = ["LlamaForCausalLM"]
    public static let modelTypes = ["llama"]
    public static let ggufArchitecture: String? = "llama"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        try decoderConfig(f, .llama, biasDefault: false)
    }

    /// The fields of every Llama-style config.json (Llama, Mistral, Qwen2/3, Phi-3): shapes, RMSNorm
    /// ε, RoPE (theta, scaling, partial rotary), biases, sliding window, special tokens.
    /// `windowFlag`: the boolean that turns the window on (Qwen's use_sliding_window); nil: a
    /// `sliding_window` below the context slides every layer (Mistral, Phi-3); `slides` false: the
    /// family has no window (Llama).
    /// `gatedActivation`: the family's gate activation, read by the caller (Gemma's tanh-GELU);
    /// nil: `hidden_act`, which must be silu.
    static func decoderConfig(_ f: HFConfigFields, _ architecture: Architecture, biasDefault: Bool, headDimDefault: Int? = nil,
                              epsDefault: Float = 1e-6, slides: Bool = false, windowFlag: String? = nil,
                              gatedActivation: Activation? = nil) throws -> ModelConfig {
        let maxPositions = try f.int("max_position_embeddings")
        let act = try gatedActivation ?? f.activation("hidden_act", default: "silu")
        guard gatedActivation != nil || act == .silu else { throw f.error("hidden_act", "the gated MLP is supported with silu only") }
        let (hidden, heads, layers) = (try f.int("hidden_size"), try f.int("num_attention_heads"), try f.int("num_hidden_layers"))
        guard heads > 0 else { throw f.error("num_attention_heads", "must be positive (got \(heads))") }
        let headDim = try f.int("head_dim", default: headDimDefault) ?? hidden / heads
        let partial = try f.partialRotaryFactor()
        let rotaryDim = Int(Float(headDim) * partial)
        guard rotaryDim > 0, rotaryDim % 2 == 0, rotaryDim <= headDim else {
            throw f.error("partial_rotary_factor", "\(partial) × head_dim \(headDim) must give an even number of rotary dims")
        }
        let (theta, scaling) = try f.rope(maxPositions: maxPositions, rotaryDim: rotaryDim)
        let window = slides ? try f.slidingWindow(flag: windowFlag, maxPositions: maxPositions, layers: layers) : nil
        return ModelConfig(
            architecture: architecture, vocabSize: try f.int("vocab_size"), hiddenSize: hidden,
            numLayers: layers, numHeads: heads,
            numKVHeads: try f.int("num_key_value_heads", default: nil), headDim: headDim,
            intermediateSize: try f.int("intermediate_size"), maxPositions: maxPositions,
            normEps: try f.float("rms_norm_eps", default: epsDefault), activation: act,
            tieWordEmbeddings: try f.bool("tie_word_embeddings", default: false),
            ropeTheta: theta, ropeScaling: scaling, rotaryDim: rotaryDim,
            slidingWindow: window?.0, slidingLayers: window?.1,
            attentionBias: try f.bool("attention_bias", default: biasDefault), mlpBias: try f.bool("mlp_bias", default: false),
            positionOffset: 0,
            bosTokenId: try f.tokenId("bos_token_id", default: 1), eosTokenId: try f.tokenId("eos_token_id", default: 2),
            padTokenId: try f.tokenId("pad_token_id", default: nil))
    }

    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        if g.tensorInfo(ggufName: "rope_freqs.weight") != nil {
            throw ModelError(file: g.path, field: "rope_freqs.weight",
                             "per-frequency RoPE factors (Llama 3 rope scaling) cannot be read from GGUF yet")
        }
        return try ggufDecoderConfig(g, .llama)
    }

    /// The `<arch>.*` metadata of every Llama-style GGUF (llama.cpp's names): shapes, RMSNorm ε,
    /// RoPE base and linear scaling, rotary width, sliding window; biases from the tensors present.
    static func ggufDecoderConfig(_ g: GGUFFile, _ architecture: Architecture, headDimDefault: Int? = nil,
                                  activation: Activation = .silu) throws -> ModelConfig {
        let arch = g.architecture ?? "", p = arch + "."
        let hidden = try g.requiredPositive(p + "embedding_length")
        let heads = try g.requiredPositive(p + "attention.head_count")
        let kvHeads = try g.uniformInt(p + "attention.head_count_kv") ?? heads
        guard kvHeads > 0, heads % kvHeads == 0 else {
            throw ModelError(file: g.path, field: p + "attention.head_count_kv", "\(kvHeads) does not divide the \(heads) query heads")
        }
        let headDim: Int
        if let k = try g.int(p + "attention.key_length") {
            guard k > 0 else { throw ModelError(file: g.path, field: p + "attention.key_length", "must be positive, found \(k)") }
            headDim = k
        } else if let d = headDimDefault {
            headDim = d
        } else {
            guard hidden % heads == 0 else {
                throw ModelError(file: g.path, field: p + "attention.head_count", "\(heads) does not divide hidden size \(hidden)")
            }
            headDim = hidden / heads
        }
        if let v = try g.int(p + "attention.value_length"), v != headDim {
            throw ModelError(file: g.path, field: p + "attention.value_length", "\(v) differs from the key length \(headDim)")
        }
        let rotaryDim = try g.int(p + "rope.dimension_count") ?? headDim
        guard rotaryDim > 0, rotaryDim % 2 == 0, rotaryDim <= headDim else {
            throw ModelError(file: g.path, field: p + "rope.dimension_count", "\(rotaryDim) rotary dims do not fit head dim \(headDim)")
        }
        let maxPositions = try g.requiredPositive(p + "context_length")
        var window: Int?
        if let w = try g.int(p + "attention.sliding_window"), w > 0, w < maxPositions { window = w }
        return ModelConfig(
            architecture: architecture, vocabSize: try g.vocabSize(arch), hiddenSize: hidden,
            numLayers: try g.requiredPositive(p + "block_count"), numHeads: heads, numKVHeads: kvHeads, headDim: headDim,
            intermediateSize: try g.requiredPositive(p + "feed_forward_length"), maxPositions: maxPositions,
            normEps: try g.requiredFloat(p + "attention.layer_norm_rms_epsilon"), activation: activation,
            tieWordEmbeddings: g.tensorInfo(ggufName: "output.weight") == nil, ropeTheta: try g.float(p + "rope.freq_base") ?? 10000,
            ropeScaling: try g.linearRopeScaling(p), rotaryDim: rotaryDim, slidingWindow: window,
            attentionBias: g.tensorInfo(ggufName: "blk.0.attn_q.bias") != nil,
            mlpBias: g.tensorInfo(ggufName: "blk.0.ffn_up.bias") != nil,
            bosTokenId: try g.tokenId("tokenizer.ggml.bos_token_id"), eosTokenId: try g.tokenId("tokenizer.ggml.eos_token_id"),
            padTokenId: try g.tokenId("tokenizer.ggml.padding_token_id"))
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        tensors(c, biased: Set((c.attentionBias ? [Role.q, .k, .v, .o] : []) + (c.mlpBias ? [.gate, .up, .down] : [])))
    }

    /// The tensors of a Llama-style layer whose `biased` projections carry a bias, with per-head
    /// q/k norms when `qkNorm` (shared with Mistral and Qwen).
    static func tensors(_ c: ModelConfig, biased: Set<Role>, qkNorm: Bool = false) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        let (h, v, f) = (c.hiddenSize, c.vocabSize, c.intermediateSize)
        let (qd, kvd) = (c.numHeads * c.headDim, c.numKVHeads * c.headDim)
        var t: [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] = [(.embed, nil, .weight, [v, h])]
        for l in 0..<c.numLayers {
            t.append((.attnNorm, l, .weight, [h]))
            for (role, rows) in [(Role.q, qd), (.k, kvd), (.v, kvd)] {
                t.append((role, l, .weight, [rows, h]))
                if biased.contains(role) { t.append((role, l, .bias, [rows])) }
            }
            t.append((.o, l, .weight, [h, qd]))
            if biased.contains(.o) { t.append((.o, l, .bias, [h])) }
            if qkNorm { t += [(.qNorm, l, .weight, [c.headDim]), (.kNorm, l, .weight, [c.headDim])] }
            t.append((.mlpNorm, l, .weight, [h]))
            t += [(.gate, l, .weight, [f, h]), (.up, l, .weight, [f, h]), (.down, l, .weight, [h, f])]
            for (role, rows) in [(Role.gate, f), (.up, f), (.down, h)] where biased.contains(role) { t.append((role, l, .bias, [rows])) }
        }
        return t + [(.finalNorm, nil, .weight, [h]), (.head, nil, .weight, [v, h])]
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan { plan(c, names: names, has: has) }

    /// A Llama-style decoder under `names`: pre-RMSNorm sublayers, RoPE, SwiGLU; q/k/v separate or
    /// fused and gate/up separate or fused as `names` has them, per-head q/k norms where it has
    /// them (Qwen3), each layer's window from the config.
    /// Every norm `names` has is built: pre-sublayer norms, output norms (Gemma 2/3, OLMo 2), q/k
    /// norms. `unitOffsetNorms`: gains are 1 + w (Gemma). Sliding layers with a local RoPE base
    /// use it (Gemma 3).
    static func plan(_ c: ModelConfig, names n: CheckpointNames, has: (String) -> Bool, unitOffsetNorms: Bool = false,
                     embeddingScale: Float? = nil, attentionScale: Float? = nil) -> DecoderPlan {
        func linear(_ role: Role, _ l: Int?) -> LinearLayer { n.linear(role, layer: l, layout: .outIn, has: has) }
        func rms(_ role: Role, _ l: Int?) -> NormLayer? {
            n.has(role, perLayer: l != nil)
                ? NormLayer(kind: .rmsNorm, weight: n.name(role, layer: l), bias: nil, unitOffset: unitOffsetNorms) : nil
        }
        let fusedQKV = n.has(.qkv, perLayer: true), fusedMLP = n.has(.gateUp, perLayer: true)
        let layers = (0..<c.numLayers).map { l in
            DecoderLayer(attentionNorm: rms(.attnNorm, l),
                         projections: fusedQKV ? .fused(linear(.qkv, l)) : .separate(q: linear(.q, l), k: linear(.k, l), v: linear(.v, l)),
                         qNorm: rms(.qNorm, l), kNorm: rms(.kNorm, l),
                         rotary: true, window: c.window(layer: l), localRope: c.localRopeTheta != nil && c.window(layer: l) > 0,
                         output: linear(.o, l), postAttentionNorm: rms(.postAttnNorm, l), mlpNorm: rms(.mlpNorm, l),
                         mlp: fusedMLP ? .fusedGated(gateUp: linear(.gateUp, l), down: linear(.down, l))
                             : .gated(gate: linear(.gate, l), up: linear(.up, l), down: linear(.down, l)),
                         postMLPNorm: rms(.postMLPNorm, l), normPlacement: .pre)
        }
        return DecoderPlan(embed: n.name(.embed), positions: nil, projectIn: nil, projectOut: nil, layers: layers,
                           finalNorm: rms(.finalNorm, nil), head: linear(.head, nil), padPosition: 0, activation: c.activation,
                           embeddingScale: embeddingScale, attentionScale: attentionScale)
    }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j: [String: Any] = ["architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize,
                                "num_hidden_layers": c.numLayers, "num_attention_heads": c.numHeads,
                                "num_key_value_heads": c.numKVHeads, "head_dim": c.headDim,
                                "rms_norm_eps": Double(c.normEps), "rope_theta": Double(c.ropeTheta),
                                "max_position_embeddings": c.maxPositions, "hidden_act": "silu",
                                "attention_bias": c.attentionBias, "mlp_bias": c.mlpBias]
        switch c.ropeScaling {
        case nil: break
        case .linear(let f): j["rope_scaling"] = ["rope_type": "linear", "factor": Double(f)]
        case .llama3(let f, let lo, let hi, let orig):
            j["rope_scaling"] = ["rope_type": "llama3", "factor": Double(f), "low_freq_factor": Double(lo),
                                 "high_freq_factor": Double(hi), "original_max_position_embeddings": orig]
        case .longrope(let short, let long, let orig, let attention):
            j["rope_scaling"] = ["rope_type": "longrope", "short_factor": short.map(Double.init), "long_factor": long.map(Double.init),
                                 "attention_factor": Double(attention), "original_max_position_embeddings": orig]
            j["original_max_position_embeddings"] = orig
        }
        if c.rotaryDim != c.headDim { j["partial_rotary_factor"] = Double(c.rotaryDim) / Double(c.headDim) }
        if let w = c.slidingWindow {
            j["sliding_window"] = w
            if let layers = c.slidingLayers { j["layer_types"] = layers.map { $0 ? "sliding_attention" : "full_attention" } }
        }
        return j
    }

    /// llama.cpp's converter permutes the rows of q and k (HF's rotate-half RoPE → GGML's pairs).
    public static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout {
        role == .q ? .unpermuteQ : role == .k ? .unpermuteK : .asIs
    }
}
