import ZOTuneBackend

/// OLMo 2: Llama's projections and SwiGLU with norms on the sublayers' outputs only (after
/// attention and after the MLP, before each residual add) and RMSNorm of q and k over the whole
/// projection (not per head) before RoPE.
public enum OLMo2: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: "model.", layers: "layers",
        perLayer: [(.q, "self_attn.q_proj"), (.k, "self_attn.k_proj"), (.v, "self_attn.v_proj"), (.o, "self_attn.o_proj"),
                   (.qNorm, "self_attn.q_norm"), (.kNorm, "self_attn.k_norm"),
                   (.postAttnNorm, "post_attention_layernorm"), (.postMLPNorm, "post_feedforward_layernorm"),
                   (.gate, "mlp.gate_proj"), (.up, "mlp.up_proj"), (.down, "mlp.down_proj")],
        topLevel: Llama.names.topLevel, aliasRoots: [])
    public static let huggingFaceClasses = ["Olmo2ForCausalLM"]
    public static let modelTypes = ["olmo2"]
    public static let ggufArchitecture: String? = "olmo2"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        var c = try Llama.decoderConfig(f, .olmo2, biasDefault: false)
        c.mlpBias = false
        return c
    }

    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        var c = try Llama.ggufDecoderConfig(g, .olmo2)
        c.mlpBias = false
        return c
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        let (h, v, f) = (c.hiddenSize, c.vocabSize, c.intermediateSize)
        let (qd, kvd) = (c.numHeads * c.headDim, c.numKVHeads * c.headDim)
        let biased = c.attentionBias
        var t: [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] = [(.embed, nil, .weight, [v, h])]
        for l in 0..<c.numLayers {
            for (role, rows) in [(Role.q, qd), (.k, kvd), (.v, kvd)] {
                t.append((role, l, .weight, [rows, h]))
                if biased { t.append((role, l, .bias, [rows])) }
            }
            t.append((.o, l, .weight, [h, qd]))
            if biased { t.append((.o, l, .bias, [h])) }
            t += [(.qNorm, l, .weight, [qd]), (.kNorm, l, .weight, [kvd]), (.postAttnNorm, l, .weight, [h]),
                  (.gate, l, .weight, [f, h]), (.up, l, .weight, [f, h]), (.down, l, .weight, [h, f]), (.postMLPNorm, l, .weight, [h])]
        }
        return t + [(.finalNorm, nil, .weight, [h]), (.head, nil, .weight, [v, h])]
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan { Llama.plan(c, names: names, has: has) }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["Olmo2ForCausalLM"]; j["model_type"] = "olmo2"
        j["mlp_bias"] = nil
        return j
    }
}
