import ZOTuneBackend

/// GPT-NeoX and Pythia: LayerNorm (gain and bias) before each sublayer, a fused query_key_value
/// with q, k, v side by side within each head, RoPE on the first rotary_pct of each head's dims,
/// biases everywhere, exact-GELU MLP, an untied head (embed_out), and with use_parallel_residual
/// both sublayers reading the same stream: x + attn(ln₁ x) + mlp(ln₂ x).
public enum GPTNeoX: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: "gpt_neox.", layers: "layers",
        perLayer: [(.attnNorm, "input_layernorm"), (.qkv, "attention.query_key_value"), (.o, "attention.dense"),
                   (.mlpNorm, "post_attention_layernorm"), (.up, "mlp.dense_h_to_4h"), (.down, "mlp.dense_4h_to_h")],
        topLevel: [(.embed, "gpt_neox.embed_in"), (.finalNorm, "gpt_neox.final_layer_norm"), (.head, "embed_out")],
        aliasRoots: [])
    public static let huggingFaceClasses = ["GPTNeoXForCausalLM"]
    public static let modelTypes = ["gpt_neox"]
    public static let ggufArchitecture: String? = "gptneox"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        let (hidden, heads) = (try f.int("hidden_size"), try f.int("num_attention_heads"))
        guard heads > 0, hidden % heads == 0 else { throw f.error("num_attention_heads", "\(heads) heads do not divide hidden size \(hidden)") }
        let headDim = hidden / heads
        // transformers 5 keeps rotary_pct as rope_parameters.partial_rotary_factor; older configs at the top.
        let partial = f.has("rotary_pct") ? try f.float("rotary_pct", default: 0.25) : try f.partialRotaryFactor(default: 0.25)
        let rotaryDim = Int(Float(headDim) * partial)
        guard rotaryDim > 0, rotaryDim % 2 == 0, rotaryDim <= headDim else {
            throw f.error("rotary_pct", "\(partial) × head dim \(headDim) must give an even number of rotary dims")
        }
        var (theta, scaling) = try f.rope(maxPositions: try f.int("max_position_embeddings"), rotaryDim: rotaryDim)
        if f.has("rotary_emb_base") { theta = try f.float("rotary_emb_base", default: 10000) }
        var c = ModelConfig(
            architecture: .gptneox, vocabSize: try f.int("vocab_size"), hiddenSize: hidden,
            numLayers: try f.int("num_hidden_layers"), numHeads: heads, intermediateSize: try f.int("intermediate_size"),
            maxPositions: try f.int("max_position_embeddings"), normEps: try f.float("layer_norm_eps", default: 1e-5),
            activation: try f.activation("hidden_act", default: "gelu"),
            tieWordEmbeddings: try f.bool("tie_word_embeddings", default: false),
            ropeTheta: theta, ropeScaling: scaling, rotaryDim: rotaryDim,
            attentionBias: try f.bool("attention_bias", default: true), mlpBias: true, positionOffset: 0,
            bosTokenId: try f.tokenId("bos_token_id", default: 0), eosTokenId: try f.tokenId("eos_token_id", default: 2),
            padTokenId: try f.tokenId("pad_token_id", default: nil))
        c.parallelResidual = try f.bool("use_parallel_residual", default: true)
        return c
    }

    /// llama.cpp's gptneox: rope.dimension_count, use_parallel_residual, layer_norm_epsilon; the
    /// converter regroups query_key_value into all q | all k | all v (undone at load).
    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        let p = "gptneox."
        let hidden = try g.requiredPositive(p + "embedding_length")
        let heads = try g.requiredPositive(p + "attention.head_count")
        guard hidden % heads == 0 else {
            throw ModelError(file: g.path, field: p + "attention.head_count", "\(heads) does not divide hidden size \(hidden)")
        }
        let rotaryDim = try g.int(p + "rope.dimension_count") ?? hidden / heads / 4
        guard rotaryDim > 0, rotaryDim % 2 == 0, rotaryDim <= hidden / heads else {
            throw ModelError(file: g.path, field: p + "rope.dimension_count", "\(rotaryDim) rotary dims do not fit head dim \(hidden / heads)")
        }
        var c = ModelConfig(
            architecture: .gptneox, vocabSize: try g.vocabSize("gptneox"), hiddenSize: hidden,
            numLayers: try g.requiredPositive(p + "block_count"), numHeads: heads,
            intermediateSize: try g.requiredPositive(p + "feed_forward_length"),
            maxPositions: try g.requiredPositive(p + "context_length"),
            normEps: try g.requiredFloat(p + "attention.layer_norm_epsilon"), activation: .geluErf,
            tieWordEmbeddings: g.tensorInfo(ggufName: "output.weight") == nil, ropeTheta: try g.float(p + "rope.freq_base") ?? 10000,
            rotaryDim: rotaryDim, attentionBias: g.tensorInfo(ggufName: "blk.0.attn_qkv.bias") != nil, mlpBias: true, positionOffset: 0,
            bosTokenId: try g.tokenId("tokenizer.ggml.bos_token_id"), eosTokenId: try g.tokenId("tokenizer.ggml.eos_token_id"),
            padTokenId: try g.tokenId("tokenizer.ggml.padding_token_id"))
        c.parallelResidual = try g.bool(p + "use_parallel_residual") ?? true
        return c
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        let (h, v, f) = (c.hiddenSize, c.vocabSize, c.intermediateSize)
        var t: [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] = [(.embed, nil, .weight, [v, h])]
        for l in 0..<c.numLayers {
            t += [(.attnNorm, l, .weight, [h]), (.attnNorm, l, .bias, [h]), (.mlpNorm, l, .weight, [h]), (.mlpNorm, l, .bias, [h]),
                  (.qkv, l, .weight, [3 * h, h])]
            if c.attentionBias { t.append((.qkv, l, .bias, [3 * h])) }
            t.append((.o, l, .weight, [h, h]))
            if c.attentionBias { t.append((.o, l, .bias, [h])) }
            t += [(.up, l, .weight, [f, h]), (.up, l, .bias, [f]), (.down, l, .weight, [h, f]), (.down, l, .bias, [h])]
        }
        return t + [(.finalNorm, nil, .weight, [h]), (.finalNorm, nil, .bias, [h]), (.head, nil, .weight, [v, h])]
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan {
        let n = names
        func linear(_ role: Role, _ l: Int?) -> LinearLayer { n.linear(role, layer: l, layout: .outIn, has: has) }
        func ln(_ role: Role, _ l: Int?) -> NormLayer {
            NormLayer(kind: .layerNorm, weight: n.name(role, layer: l), bias: n.name(role, layer: l, .bias))
        }
        let layers = (0..<c.numLayers).map { l in
            DecoderLayer(attentionNorm: ln(.attnNorm, l), projections: .fused(linear(.qkv, l), interleaved: true), rotary: true,
                         output: linear(.o, l), mlpNorm: ln(.mlpNorm, l), mlp: .plain(up: linear(.up, l), down: linear(.down, l)),
                         normPlacement: .pre, parallelResidual: c.parallelResidual)
        }
        return DecoderPlan(embed: n.name(.embed), positions: nil, projectIn: nil, projectOut: nil, layers: layers,
                           finalNorm: ln(.finalNorm, nil), head: linear(.head, nil), padPosition: 0, activation: c.activation)
    }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        ["architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
         "hidden_size": c.hiddenSize, "intermediate_size": c.intermediateSize, "num_hidden_layers": c.numLayers,
         "num_attention_heads": c.numHeads, "max_position_embeddings": c.maxPositions, "layer_norm_eps": Double(c.normEps),
         "hidden_act": c.activation == .geluTanh ? "gelu_new" : "gelu", "use_parallel_residual": c.parallelResidual,
         "attention_bias": c.attentionBias,
         "rope_parameters": ["rope_type": "default", "rope_theta": Double(c.ropeTheta),
                             "partial_rotary_factor": Double(c.rotaryDim) / Double(c.headDim)]]
    }

    public static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout { role == .qkv ? .interleaveQKV : .asIs }
}
