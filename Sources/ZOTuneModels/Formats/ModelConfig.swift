import ZOTuneBackend

/// The decoder families ZOTune runs.
public enum Architecture: String, Sendable, CaseIterable {
    case opt, gpt2, llama, mistral, qwen2, qwen3, phi3, gemma, gemma2, gemma3, olmo2, gptneox
}

/// Rotary scaling as in transformers' `rope_scaling` (Llama 3 style and linear).
public enum RopeScaling: Sendable, Equatable {
    case linear(factor: Float)
    /// Llama 3: factor, low/high frequency factors, original context length.
    case llama3(factor: Float, lowFreqFactor: Float, highFreqFactor: Float, originalMaxPositions: Int)
    /// LongRoPE (Phi-3): per-frequency divisors, `short` while a forward's positions stay within
    /// `originalMaxPositions`, `long` beyond; cos and sin are multiplied by `attentionFactor`.
    case longrope(short: [Float], long: [Float], originalMaxPositions: Int, attentionFactor: Float)
}

/// Everything an architecture needs to know about a checkpoint, from config.json or GGUF metadata.
public struct ModelConfig: Sendable, Equatable {
    public var architecture: Architecture
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numLayers: Int
    public var numHeads: Int
    public var numKVHeads: Int
    public var headDim: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    /// LayerNorm / RMSNorm epsilon.
    public var normEps: Float
    /// MLP activation: relu (OPT), geluTanh (GPT-2 "gelu_new"), silu (Llama, gated).
    public var activation: Activation
    public var tieWordEmbeddings: Bool
    // Llama
    public var ropeTheta: Float
    public var ropeScaling: RopeScaling?
    /// Leading dims of each head that RoPE rotates (Phi-3's partial_rotary_factor × head_dim).
    public var rotaryDim: Int
    /// Sliding-window attention: each query sees this many keys, itself included (nil: all).
    public var slidingWindow: Int?
    /// Which layers slide when `slidingWindow` is set (nil: every layer; Qwen2/3's layer_types).
    public var slidingLayers: [Bool]?
    /// RoPE base of the sliding layers when it differs from `ropeTheta` (Gemma 3's local base).
    public var localRopeTheta: Float?
    /// Attention scores are scaled by queryPreAttnScalar^-½ instead of head_dim^-½ (Gemma 2/3).
    public var queryPreAttnScalar: Float?
    /// x + attn(norm₁ x) + mlp(norm₂ x) (GPT-NeoX's use_parallel_residual).
    public var parallelResidual = false
    /// Attention scores and final logits soft-capped as cap·tanh(x/cap) (Gemma 2); nil: not capped.
    public var attentionSoftcap: Float?
    public var finalLogitSoftcap: Float?
    /// Bias on q/k/v/o projections (Llama `attention_bias`; always true for OPT and GPT-2).
    public var attentionBias: Bool
    /// Bias on MLP projections (Llama `mlp_bias`; always true for OPT and GPT-2).
    public var mlpBias: Bool
    // OPT
    /// Pre-LN (true for every OPT except 350m).
    public var doLayerNormBefore: Bool
    /// OPT-350m: embeddings are this wide and projected in/out of the hidden size.
    public var wordEmbedProjDim: Int?
    /// Learned positions start at this index (2 for OPT, 0 for GPT-2).
    public var positionOffset: Int
    // Special tokens (nil when the checkpoint has none)
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    public var padTokenId: Int?

    public init(architecture: Architecture, vocabSize: Int, hiddenSize: Int, numLayers: Int, numHeads: Int,
                numKVHeads: Int? = nil, headDim: Int? = nil, intermediateSize: Int, maxPositions: Int,
                normEps: Float, activation: Activation, tieWordEmbeddings: Bool,
                ropeTheta: Float = 10000, ropeScaling: RopeScaling? = nil, rotaryDim: Int? = nil,
                slidingWindow: Int? = nil, slidingLayers: [Bool]? = nil,
                attentionBias: Bool = true, mlpBias: Bool = true,
                doLayerNormBefore: Bool = true, wordEmbedProjDim: Int? = nil, positionOffset: Int = 0,
                bosTokenId: Int? = nil, eosTokenId: Int? = nil, padTokenId: Int? = nil) {
        self.architecture = architecture
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.numLayers = numLayers
        self.numHeads = numHeads
        self.numKVHeads = numKVHeads ?? numHeads
        self.headDim = headDim ?? hiddenSize / max(numHeads, 1)
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.normEps = normEps
        self.activation = activation
        self.tieWordEmbeddings = tieWordEmbeddings
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.rotaryDim = rotaryDim ?? self.headDim
        self.slidingWindow = slidingWindow
        self.slidingLayers = slidingLayers
        self.attentionBias = attentionBias
        self.mlpBias = mlpBias
        self.doLayerNormBefore = doLayerNormBefore
        self.wordEmbedProjDim = wordEmbedProjDim
        self.positionOffset = positionOffset
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.padTokenId = padTokenId
    }
}

public extension ModelConfig {
    /// The attention window of layer `l` (0: the whole causal past).
    func window(layer l: Int) -> Int {
        guard let w = slidingWindow else { return 0 }
        return slidingLayers.map { l < $0.count && $0[l] } ?? true ? w : 0
    }
}
