import ZOTuneBackend

/// GPT-2: learned positions, LayerNorm before each sublayer, fused c_attn, Conv1D weights stored
/// (in, out), c_fc → GELU → c_proj.
public enum GPT2: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: "transformer.", layers: "h",
        perLayer: [(.attnNorm, "ln_1"), (.qkv, "attn.c_attn"), (.o, "attn.c_proj"), (.mlpNorm, "ln_2"),
                   (.up, "mlp.c_fc"), (.down, "mlp.c_proj")],
        topLevel: [(.embed, "transformer.wte"), (.positions, "transformer.wpe"), (.finalNorm, "transformer.ln_f"), (.head, "lm_head")],
        aliasRoots: [""])
    public static let ggufArchitecture: String? = "gpt2"
    public static let hasLearnedPositions = true
    public static let huggingFaceClasses = ["GPT2LMHeadModel"]
    public static let modelTypes = ["gpt2"]

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        let embd = try f.int("n_embd")
        guard try f.bool("scale_attn_weights", default: true) else {
            throw f.error("scale_attn_weights", "false is not supported")
        }
        guard try !f.bool("scale_attn_by_inverse_layer_idx", default: false) else {
            throw f.error("scale_attn_by_inverse_layer_idx", "true is not supported")
        }
        // Very old configs name the context length n_ctx.
        let positions = f.has("n_positions") || !f.has("n_ctx") ? try f.int("n_positions") : try f.int("n_ctx")
        return ModelConfig(
            architecture: .gpt2, vocabSize: try f.int("vocab_size"), hiddenSize: embd,
            numLayers: try f.int("n_layer"), numHeads: try f.int("n_head"),
            intermediateSize: try f.int("n_inner", default: 4 * embd)!, maxPositions: positions,
            normEps: try f.float("layer_norm_epsilon", default: 1e-5),
            activation: try f.activation("activation_function", default: "gelu_new"),
            tieWordEmbeddings: try f.bool("tie_word_embeddings", default: true),
            positionOffset: 0,
            bosTokenId: try f.tokenId("bos_token_id", default: 50256), eosTokenId: try f.tokenId("eos_token_id", default: 50256),
            padTokenId: try f.tokenId("pad_token_id", default: nil))
    }

    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        let p = "gpt2."
        let hidden = try g.requiredPositive(p + "embedding_length")
        let heads = try g.requiredPositive(p + "attention.head_count")
        guard hidden % heads == 0 else {
            throw ModelError(file: g.path, field: p + "attention.head_count", "\(heads) does not divide hidden size \(hidden)")
        }
        return ModelConfig(
            architecture: .gpt2, vocabSize: try g.vocabSize("gpt2"), hiddenSize: hidden,
            numLayers: try g.requiredPositive(p + "block_count"), numHeads: heads,
            intermediateSize: try g.requiredPositive(p + "feed_forward_length"),
            maxPositions: try g.requiredPositive(p + "context_length"),
            normEps: try g.requiredFloat(p + "attention.layer_norm_epsilon"), activation: .geluTanh,
            tieWordEmbeddings: g.tensorInfo(ggufName: "output.weight") == nil, positionOffset: 0,
            bosTokenId: try g.tokenId("tokenizer.ggml.bos_token_id"), eosTokenId: try g.tokenId("tokenizer.ggml.eos_token_id"),
            padTokenId: try g.tokenId("tokenizer.ggml.padding_token_id"))
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        let (h, v, f) = (c.hiddenSize, c.vocabSize, c.intermediateSize)
        var t: [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] =
            [(.embed, nil, .weight, [v, h]), (.positions, nil, .weight, [c.maxPositions, h])]
        for l in 0..<c.numLayers {   // Conv1D weights: (in, out)
            t += [(.attnNorm, l, .weight, [h]), (.attnNorm, l, .bias, [h]),
                  (.qkv, l, .weight, [h, 3 * h]), (.qkv, l, .bias, [3 * h]), (.o, l, .weight, [h, h]), (.o, l, .bias, [h]),
                  (.mlpNorm, l, .weight, [h]), (.mlpNorm, l, .bias, [h]),
                  (.up, l, .weight, [h, f]), (.up, l, .bias, [f]), (.down, l, .weight, [f, h]), (.down, l, .bias, [h])]
        }
        return t + [(.finalNorm, nil, .weight, [h]), (.finalNorm, nil, .bias, [h]), (.head, nil, .weight, [v, h])]
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan {
        let n = names
        func conv(_ role: Role, _ l: Int) -> LinearLayer { n.linear(role, layer: l, layout: .inOut, has: has) }
        func ln(_ role: Role, _ l: Int?) -> NormLayer {
            NormLayer(kind: .layerNorm, weight: n.name(role, layer: l), bias: n.name(role, layer: l, .bias))
        }
        let layers = (0..<c.numLayers).map { l in
            DecoderLayer(attentionNorm: ln(.attnNorm, l), projections: .fused(conv(.qkv, l)), rotary: false, output: conv(.o, l),
                         mlpNorm: ln(.mlpNorm, l), mlp: .plain(up: conv(.up, l), down: conv(.down, l)), normPlacement: .pre)
        }
        return DecoderPlan(embed: n.name(.embed), positions: n.name(.positions), projectIn: nil, projectOut: nil, layers: layers,
                           finalNorm: ln(.finalNorm, nil), head: n.linear(.head, layer: nil, layout: .outIn, has: has),
                           padPosition: 0, activation: c.activation)
    }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        ["architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
         "n_embd": c.hiddenSize, "n_layer": c.numLayers, "n_head": c.numHeads,
         "n_positions": c.maxPositions, "n_inner": c.intermediateSize,
         "layer_norm_epsilon": Double(c.normEps), "activation_function": c.activation == .geluErf ? "gelu" : "gelu_new"]
    }

    /// llama.cpp stores Conv1D weights transposed to (out, in).
    public static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout {
        part == .weight && [.qkv, .o, .up, .down].contains(role) ? .transpose : .asIs
    }
}
