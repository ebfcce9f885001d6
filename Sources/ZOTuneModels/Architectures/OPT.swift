import ZOTuneBackend

/// OPT: learned positions offset by 2, LayerNorm before each sublayer (after its residual in
/// OPT-350m, which also projects embeddings in and out of the hidden size), biased q/k/v/out_proj,
/// fc1 → ReLU → fc2.
public enum OPT: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: "model.decoder.", layers: "layers",
        perLayer: [(.q, "self_attn.q_proj"), (.k, "self_attn.k_proj"), (.v, "self_attn.v_proj"), (.o, "self_attn.out_proj"),
                   (.attnNorm, "self_attn_layer_norm"), (.up, "fc1"), (.down, "fc2"), (.mlpNorm, "final_layer_norm")],
        topLevel: [(.embed, "model.decoder.embed_tokens"), (.positions, "model.decoder.embed_positions"),
                   (.projectIn, "model.decoder.project_in"), (.projectOut, "model.decoder.project_out"),
                   (.finalNorm, "model.decoder.final_layer_norm"), (.head, "lm_head")],
        aliasRoots: ["decoder."])
    public static let hasLearnedPositions = true
    public static let huggingFaceClasses = ["OPTForCausalLM"]
    public static let modelTypes = ["opt"]

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        let hidden = try f.int("hidden_size")
        let projDim = try f.int("word_embed_proj_dim", default: hidden)!
        guard try f.bool("layer_norm_elementwise_affine", default: true) else {
            throw f.error("layer_norm_elementwise_affine", "false is not supported")
        }
        guard try !f.bool("_remove_final_layer_norm", default: false) else {
            throw f.error("_remove_final_layer_norm", "true is not supported")
        }
        let bias = try f.bool("enable_bias", default: true)
        return ModelConfig(
            architecture: .opt, vocabSize: try f.int("vocab_size"), hiddenSize: hidden,
            numLayers: try f.int("num_hidden_layers"), numHeads: try f.int("num_attention_heads"),
            intermediateSize: try f.int("ffn_dim"), maxPositions: try f.int("max_position_embeddings"),
            normEps: 1e-5,  // OPT's LayerNorms use PyTorch's default
            activation: try f.activation("activation_function", default: "relu"),
            tieWordEmbeddings: try f.bool("tie_word_embeddings", default: true),
            attentionBias: bias, mlpBias: bias,
            doLayerNormBefore: try f.bool("do_layer_norm_before", default: true),
            wordEmbedProjDim: projDim == hidden ? nil : projDim,
            positionOffset: 2,
            bosTokenId: try f.tokenId("bos_token_id", default: 2), eosTokenId: try f.tokenId("eos_token_id", default: 2),
            padTokenId: try f.tokenId("pad_token_id", default: 1))
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        let (h, v, f) = (c.hiddenSize, c.vocabSize, c.intermediateSize)
        let e = c.wordEmbedProjDim ?? h
        var t: [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] =
            [(.embed, nil, .weight, [v, e]), (.positions, nil, .weight, [c.maxPositions + c.positionOffset, h])]
        if e != h { t += [(.projectIn, nil, .weight, [h, e]), (.projectOut, nil, .weight, [e, h])] }
        for l in 0..<c.numLayers {
            for role in [Role.q, .k, .v, .o] { t += [(role, l, .weight, [h, h]), (role, l, .bias, [h])] }
            t += [(.attnNorm, l, .weight, [h]), (.attnNorm, l, .bias, [h]),
                  (.up, l, .weight, [f, h]), (.up, l, .bias, [f]), (.down, l, .weight, [h, f]), (.down, l, .bias, [h]),
                  (.mlpNorm, l, .weight, [h]), (.mlpNorm, l, .bias, [h])]
        }
        if c.doLayerNormBefore { t += [(.finalNorm, nil, .weight, [h]), (.finalNorm, nil, .bias, [h])] }
        return t + [(.head, nil, .weight, [v, e])]
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan {
        let n = names
        func linear(_ role: Role, _ l: Int?) -> LinearLayer { n.linear(role, layer: l, layout: .outIn, has: has) }
        func ln(_ role: Role, _ l: Int?) -> NormLayer {
            NormLayer(kind: .layerNorm, weight: n.name(role, layer: l), bias: n.name(role, layer: l, .bias))
        }
        let layers = (0..<c.numLayers).map { l in
            DecoderLayer(attentionNorm: ln(.attnNorm, l), projections: .separate(q: linear(.q, l), k: linear(.k, l), v: linear(.v, l)),
                         rotary: false, output: linear(.o, l), mlpNorm: ln(.mlpNorm, l),
                         mlp: .plain(up: linear(.up, l), down: linear(.down, l)), normPlacement: c.doLayerNormBefore ? .pre : .post)
        }
        let projected = (c.wordEmbedProjDim ?? c.hiddenSize) != c.hiddenSize
        return DecoderPlan(embed: n.name(.embed), positions: n.name(.positions),
                           projectIn: projected ? linear(.projectIn, nil) : nil, projectOut: projected ? linear(.projectOut, nil) : nil,
                           layers: layers, finalNorm: c.doLayerNormBefore ? ln(.finalNorm, nil) : nil, head: linear(.head, nil),
                           padPosition: Int32(c.positionOffset) - 1, activation: c.activation)
    }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        ["architectures": ["OPTForCausalLM"], "model_type": "opt",
         "hidden_size": c.hiddenSize, "ffn_dim": c.intermediateSize, "num_hidden_layers": c.numLayers,
         "num_attention_heads": c.numHeads, "max_position_embeddings": c.maxPositions,
         "do_layer_norm_before": c.doLayerNormBefore, "word_embed_proj_dim": c.wordEmbedProjDim ?? c.hiddenSize,
         "activation_function": "relu"]
    }
}
