import Foundation
import ZOTuneBackend

/// Gemma 2: Gemma's embeddings scale, 1 + w norms and GeGLU, norms after attention and after the
/// MLP, scores scaled by query_pre_attn_scalar^-½ and soft-capped (cap·tanh(s/cap), before the
/// mask), final logits soft-capped, and sliding layers alternating with global ones.
public enum Gemma2: ArchitectureFamily {
    public static let names = CheckpointNames(
        root: "model.", layers: "layers",
        perLayer: Llama.names.perLayer.filter { $0.0 != .mlpNorm }
            + [(.postAttnNorm, "post_attention_layernorm"), (.mlpNorm, "pre_feedforward_layernorm"),
               (.postMLPNorm, "post_feedforward_layernorm")],
        topLevel: Llama.names.topLevel, aliasRoots: [])
    public static let huggingFaceClasses = ["Gemma2ForCausalLM"]
    public static let modelTypes = ["gemma2"]
    public static let ggufArchitecture: String? = "gemma2"
    public static let hasLearnedPositions = false

    public static func config(huggingFace f: HFConfigFields) throws -> ModelConfig {
        var c = try Llama.decoderConfig(f, .gemma2, biasDefault: false, headDimDefault: 256, gatedActivation: try Gemma.gemmaActivation(f))
        c.tieWordEmbeddings = try f.bool("tie_word_embeddings", default: true)
        c.mlpBias = false
        c.queryPreAttnScalar = try f.float("query_pre_attn_scalar", default: 256)
        c.attentionSoftcap = try softcap(f, "attn_logit_softcapping", default: 50)
        c.finalLogitSoftcap = try softcap(f, "final_logit_softcapping", default: 30)
        c.slidingWindow = try f.positiveWindow(default: 4096)
        c.slidingLayers = try f.slidingLayers(c.numLayers) { $0 % 2 == 0 }   // transformers: even layers slide
        return c
    }

    /// A soft-cap field: absent gives the default, null none, else a positive number.
    static func softcap(_ f: HFConfigFields, _ key: String, default value: Float) throws -> Float? {
        guard let v = f.dict[key] else { return value }
        if v is NSNull { return nil }
        let cap = try f.float(key, default: value)
        guard cap > 0, cap.isFinite else { throw f.error(key, "must be a positive number or null (got \(cap))") }
        return cap
    }

    /// llama.cpp's gemma2: both soft-caps and the window in the metadata; the score scale is
    /// head_dim^-½ and the layers alternate (llama.cpp writes no query_pre_attn_scalar or pattern).
    public static func config(gguf g: GGUFFile) throws -> ModelConfig {
        var c = try Llama.ggufDecoderConfig(g, .gemma2, activation: .geluTanh)
        c.mlpBias = false
        c.queryPreAttnScalar = Float(c.headDim)
        c.attentionSoftcap = try g.float("gemma2.attn_logit_softcapping")
        c.finalLogitSoftcap = try g.float("gemma2.final_logit_softcapping")
        if let w = try g.int("gemma2.attention.sliding_window"), w > 0 { c.slidingWindow = w }
        c.slidingLayers = (0..<c.numLayers).map { $0 % 2 == 0 }
        return c
    }

    public static func tensors(_ c: ModelConfig) -> [(role: Role, layer: Int?, part: TensorPart, shape: [Int])] {
        Gemma3.postNormTensors(Llama.tensors(c, biased: c.attentionBias ? [.q, .k, .v, .o] : []), c)
    }

    public static func plan(_ c: ModelConfig, has: (String) -> Bool) -> DecoderPlan {
        Llama.plan(c, names: names, has: has, unitOffsetNorms: true, embeddingScale: Float(Double(c.hiddenSize).squareRoot()),
                   attentionScale: c.queryPreAttnScalar.map { Float(1 / Double($0).squareRoot()) })
    }

    public static func huggingFaceConfig(_ c: ModelConfig) -> [String: Any] {
        var j = Llama.huggingFaceConfig(c)
        j["architectures"] = ["Gemma2ForCausalLM"]; j["model_type"] = "gemma2"
        j["hidden_activation"] = c.activation == .geluErf ? "gelu" : "gelu_pytorch_tanh"
        j["tie_word_embeddings"] = c.tieWordEmbeddings
        j["mlp_bias"] = nil
        j["query_pre_attn_scalar"] = c.queryPreAttnScalar.map { $0 == $0.rounded() ? Int($0) as Any : Double($0) }   // an int field in transformers
        j["attn_logit_softcapping"] = c.attentionSoftcap.map { Double($0) as Any } ?? NSNull()
        j["final_logit_softcapping"] = c.finalLogitSoftcap.map { Double($0) as Any } ?? NSNull()
        return j
    }

    public static func ggufLayout(_ role: Role, part: TensorPart) -> GGUFLayout { Gemma.ggufLayout(role, part: part) }
}
