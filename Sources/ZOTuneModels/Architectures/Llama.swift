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
    public static let ggufArchitecture: String? = "llama"
    public static let hasLearnedPositions = false

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        tensors(c, biased: Set((c.attentionBias ? [Role.q, .k, .v, .o] : []) + (c.mlpBias ? [.gate, .up, .down] : [])))
    }

    /// The tensors of a Llama-style layer whose `biased` projections carry a bias (shared with Qwen2).
    static func tensors(_ c: ModelConfig, biased: Set<Role>) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
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
            t.append((.mlpNorm, l, .weight, [h]))
            t += [(.gate, l, .weight, [f, h]), (.up, l, .weight, [f, h]), (.down, l, .weight, [h, f])]
            for (role, rows) in [(Role.gate, f), (.up, f), (.down, h)] where biased.contains(role) { t.append((role, l, .bias, [rows])) }
        }
        return t + [(.finalNorm, nil, .weight, [h]), (.head, nil, .weight, [v, h])]
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan {
        let n = names
        func linear(_ role: Role, _ l: Int?) -> LinearLayer { n.linear(role, layer: l, layout: .outIn, has: has) }
        func rms(_ role: Role, _ l: Int?) -> NormLayer { NormLayer(kind: .rmsNorm, weight: n.name(role, layer: l), bias: nil) }
        let layers = (0..<c.numLayers).map { l in
            DecoderLayer(attentionNorm: rms(.attnNorm, l),
                         projections: .separate(q: linear(.q, l), k: linear(.k, l), v: linear(.v, l)), rotary: true,
                         output: linear(.o, l), mlpNorm: rms(.mlpNorm, l),
                         mlp: .gated(gate: linear(.gate, l), up: linear(.up, l), down: linear(.down, l)), normPlacement: .pre)
        }
        return DecoderPlan(embed: n.name(.embed), positions: nil, projectIn: nil, projectOut: nil, layers: layers,
                           finalNorm: rms(.finalNorm, nil), head: linear(.head, nil), padPosition: 0, activation: c.activation)
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
        }
        return j
    }

    /// llama.cpp's converter permutes the rows of q and k (HF's rotate-half RoPE → GGML's pairs).
    public static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout {
        role == .q ? .unpermuteQ : role == .k ? .unpermuteK : .asIs
    }
}
