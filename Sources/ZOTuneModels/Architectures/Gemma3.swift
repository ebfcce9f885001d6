import Foundation
import ZOTuneBackend

/// Gemma 3 (text): Gemma's embeddings scale, 1 + w norms and GeGLU, plus per-head q/k RMSNorm,
/// norms after attention and after the MLP, scores scaled by query_pre_attn_scalar^-½, sliding
/// layers (the config's layer_types, else every sixth layer global) with their own RoPE base.
public enum Gemma3: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: "model.", layers: "layers",
        perLayer: [(.attnNorm, "input_layernorm"), (.q, "self_attn.q_proj"), (.k, "self_attn.k_proj"), (.v, "self_attn.v_proj"),
                   (.o, "self_attn.o_proj"), (.qNorm, "self_attn.q_norm"), (.kNorm, "self_attn.k_norm"),
                   (.postAttnNorm, "post_attention_layernorm"), (.mlpNorm, "pre_feedforward_layernorm"),
                   (.postMLPNorm, "post_feedforward_layernorm"),
                   (.gate, "mlp.gate_proj"), (.up, "mlp.up_proj"), (.down, "mlp.down_proj")],
        topLevel: Llama.names.topLevel, aliasRoots: [])
    public static let huggingFaceClasses = ["Gemma3ForCausalLM"]
    public static let modelTypes = ["gemma3_text"]
    public static let ggufArchitecture: String? = "gemma3"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        // transformers 5: rope_parameters per layer type; 4.x: rope_theta, rope_local_base_freq, rope_scaling.
        var global = f, local: Float?
        if let p = f.dict["rope_parameters"] as? [String: Any], let full = p["full_attention"] as? [String: Any] {
            var d = f.dict
            d["rope_parameters"] = full
            global = HFConfigFields(file: f.file, dict: d)
            if let s = p["sliding_attention"] as? [String: Any] {
                local = try HFConfigFields(file: f.file, dict: ["rope_parameters": s]).rope().0
            }
        } else {
            local = try f.float("rope_local_base_freq", default: 10000)
        }
        var c = try Llama.decoderConfig(global, .gemma3, biasDefault: false, headDimDefault: 256, gatedActivation: try Gemma.gemmaActivation(f))
        c.tieWordEmbeddings = try f.bool("tie_word_embeddings", default: true)
        c.mlpBias = false
        c.localRopeTheta = local
        c.queryPreAttnScalar = try f.float("query_pre_attn_scalar", default: 256)
        c.slidingWindow = try f.positiveWindow(default: 4096)
        let pattern = try f.int("sliding_window_pattern", default: 6)!
        guard pattern > 0 else { throw f.error("sliding_window_pattern", "must be positive (got \(pattern))") }
        c.slidingLayers = try f.slidingLayers(c.numLayers) { ($0 + 1) % pattern != 0 }   // every pattern-th layer global
        return c
    }

    /// llama.cpp's gemma3: rope.freq_base (global) and rope.freq_base_swa (local), attention.sliding_window;
    /// it writes neither query_pre_attn_scalar nor the layer pattern (llama.cpp assumes head_dim and
    /// every sixth layer global): a GGUF Gemma 3 is read with those assumptions.
    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        var c = try Llama.ggufDecoderConfig(g, .gemma3, activation: .geluTanh)
        c.mlpBias = false
        c.localRopeTheta = try g.float("gemma3.rope.freq_base_swa") ?? 10000
        c.queryPreAttnScalar = Float(c.headDim)
        if let w = try g.int("gemma3.attention.sliding_window"), w > 0 { c.slidingWindow = w }
        c.slidingLayers = (0..<c.numLayers).map { ($0 + 1) % 6 != 0 }
        return c
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        postNormTensors(Llama.tensors(c, biased: c.attentionBias ? [.q, .k, .v, .o] : [], qkNorm: true), c)
    }

    /// Llama's tensors with each layer's output norms after its o and down weights (Gemma 2 and 3).
    static func postNormTensors(_ llama: [(role: Role, layer: Int?, part: TensorPart, shape: [Int])], _ c: ModelConfig)
        -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        var t = llama
        for l in (0..<c.numLayers).reversed() {
            let h = c.hiddenSize
            if let down = t.lastIndex(where: { $0.layer == l && $0.role == .down && $0.part == .weight }) {
                t.insert((.postMLPNorm, l, .weight, [h]), at: down + 1)
            }
            if let o = t.lastIndex(where: { $0.layer == l && $0.role == .o }) {
                t.insert((.postAttnNorm, l, .weight, [h]), at: o + 1)
            }
        }
        return t
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan {
        Llama.plan(c, names: names, has: has, unitOffsetNorms: true, embeddingScale: Float(Double(c.hiddenSize).squareRoot()),
                   attentionScale: c.queryPreAttnScalar.map { Float(1 / Double($0).squareRoot()) })
    }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["Gemma3ForCausalLM"]; j["model_type"] = "gemma3_text"
        j["hidden_activation"] = c.activation == .geluErf ? "gelu" : "gelu_pytorch_tanh"
        j["tie_word_embeddings"] = c.tieWordEmbeddings
        j["mlp_bias"] = nil
        j["rope_theta"] = nil
        j["rope_parameters"] = ["full_attention": ["rope_type": "default", "rope_theta": Double(c.ropeTheta)],
                                "sliding_attention": ["rope_type": "default", "rope_theta": Double(c.localRopeTheta ?? c.ropeTheta)]]
        if let s = j.removeValue(forKey: "rope_scaling") as? [String: Any] {
            var full = s
            full["rope_theta"] = Double(c.ropeTheta)
            j["rope_parameters"] = ["full_attention": full,
                                    "sliding_attention": ["rope_type": "default", "rope_theta": Double(c.localRopeTheta ?? c.ropeTheta)]]
        }
        j["query_pre_attn_scalar"] = c.queryPreAttnScalar.map { $0 == $0.rounded() ? Int($0) as Any : Double($0) }   // an int field in transformers
        return j
    }

    public static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout { Gemma.ggufLayout(role, part: part) }
}
