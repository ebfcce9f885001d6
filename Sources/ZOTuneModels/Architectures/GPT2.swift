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
