import Foundation
import ZOTuneBackend

/// Phi-3 and Phi-4: Llama's layer with q/k/v fused in `qkv_proj` and gate/up fused in
/// `gate_up_proj` (both Linear layout, gate rows first), no biases, RoPE on the first
/// partial_rotary_factor·head_dim dims, LongRoPE scaling, an optional sliding window on every layer.
public enum Phi3: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: "model.", layers: "layers",
        perLayer: [(.attnNorm, "input_layernorm"), (.qkv, "self_attn.qkv_proj"), (.o, "self_attn.o_proj"),
                   (.mlpNorm, "post_attention_layernorm"), (.gateUp, "mlp.gate_up_proj"), (.down, "mlp.down_proj")],
        topLevel: Llama.names.topLevel, aliasRoots: [])
    public static let huggingFaceClasses = ["Phi3ForCausalLM"]
    public static let modelTypes = ["phi3"]
    public static let ggufArchitecture: String? = "phi3"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        var c = try Llama.decoderConfig(f, .phi3, biasDefault: false, epsDefault: 1e-5, slides: true)
        c.attentionBias = false
        c.mlpBias = false
        return c
    }

    /// llama.cpp's phi3: rope.dimension_count is the rotary width; LongRoPE's factors are the
    /// tensors rope_factors_short/rope_factors_long with `phi3.rope.scaling.attn_factor` and
    /// `.original_context_length`.
    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        var c = try Llama.ggufDecoderConfig(g, .phi3)
        c.attentionBias = false
        c.mlpBias = false
        if g.tensorInfo(ggufName: "rope_factors_long.weight") != nil || g.tensorInfo(ggufName: "rope_factors_short.weight") != nil {
            func factors(_ name: String) throws -> [Float] {
                guard let info = g.tensorInfo(ggufName: name), info.dims == [c.rotaryDim / 2] else {
                    throw ModelError(file: g.path, field: name, "LongRoPE needs \(c.rotaryDim / 2) factors")
                }
                var v = [Float](repeating: 0, count: c.rotaryDim / 2)
                try v.withUnsafeMutableBytes { try g.read(info.name, into: $0, as: .f32) }
                return v
            }
            let origKey = "phi3.rope.scaling.original_context_length"
            guard let orig = try g.int(origKey), orig > 0 else { throw ModelError(file: g.path, field: origKey, "missing (needed by LongRoPE)") }
            let factor = Double(c.maxPositions) / Double(orig)
            let attention = try g.float("phi3.rope.scaling.attn_factor")
                ?? Float(factor <= 1 ? 1 : (1 + Foundation.log(factor) / Foundation.log(Double(orig))).squareRoot())
            c.ropeScaling = .longrope(short: try factors("rope_factors_short.weight"), long: try factors("rope_factors_long.weight"),
                                      originalMaxPositions: orig, attentionFactor: attention)
        }
        return c
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        let (h, v, f) = (c.hiddenSize, c.vocabSize, c.intermediateSize)
        let (qd, kvd) = (c.numHeads * c.headDim, c.numKVHeads * c.headDim)
        var t: [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] = [(.embed, nil, .weight, [v, h])]
        for l in 0..<c.numLayers {
            t += [(.attnNorm, l, .weight, [h]), (.qkv, l, .weight, [qd + 2 * kvd, h]), (.o, l, .weight, [h, qd]),
                  (.mlpNorm, l, .weight, [h]), (.gateUp, l, .weight, [2 * f, h]), (.down, l, .weight, [h, f])]
        }
        return t + [(.finalNorm, nil, .weight, [h]), (.head, nil, .weight, [v, h])]
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan { Llama.plan(c, names: names, has: has) }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["Phi3ForCausalLM"]; j["model_type"] = "phi3"
        j["attention_bias"] = nil; j["mlp_bias"] = nil
        j["sliding_window"] = c.slidingWindow.map { $0 as Any } ?? NSNull()
        return j
    }
}
