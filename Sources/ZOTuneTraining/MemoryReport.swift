import Foundation
import ZOTuneBackend
import ZOTuneModels

/// ALGORITHMS.md §8: a ZO run's ledger peak against an inference-only forward of the same batch,
/// and against the analytic footprint of first-order fine-tuning with Adam.
public struct MemoryReport: Sendable {
    public let zoPeakBytes: Int
    public let inferencePeakBytes: Int
    public let foAdamBytes: Int
    public let weightBytes: Int
    /// The optimizer's name and its state's bytes (part of the ZO peak).
    public let optimizer: String
    public let stateBytes: Int

    public init(zoPeakBytes: Int, inferencePeakBytes: Int, foAdamBytes: Int, weightBytes: Int, optimizer: String = "mezo", stateBytes: Int = 0) {
        self.zoPeakBytes = zoPeakBytes
        self.inferencePeakBytes = inferencePeakBytes
        self.foAdamBytes = foAdamBytes
        self.weightBytes = weightBytes
        self.optimizer = optimizer
        self.stateBytes = stateBytes
    }

    public var ratio: Double { Double(zoPeakBytes) / Double(max(1, inferencePeakBytes)) }

    /// First-order fine-tuning with Adam in f32: weights + gradients + two moments (4 × 4 bytes per
    /// parameter) plus the activations backpropagation keeps, counted per layer and token as the
    /// tensors our forward produces: the block input, two norm outputs, q/k/v, the attention output
    /// and its projection, the MLP's (gate,) up, activation and down input, and the attention
    /// probabilities (heads × T per token); then the final norm output and the logits with their
    /// softmax (2 × vocab per token). A floor: frameworks keep more (masks, dropout, copies).
    /// With a PEFT adapter only its `parameters` get gradients and moments, but the frozen base
    /// (`frozenBytes`, as stored) is still held and backpropagation still keeps every layer's
    /// activations.
    public static func foAdamBytes(config c: ModelConfig, parameters: Int, frozenBytes: Int = 0, batch: Int, seqLen: Int) -> Int {
        let tokens = batch * seqLen
        let (h, f) = (c.hiddenSize, c.intermediateSize)
        let (qd, kvd) = (c.numHeads * c.headDim, c.numKVHeads * c.headDim)
        // A gated MLP keeps gate, up, their product and the down input; a plain one up and its activation.
        let gated = c.architecture.family.plan(c, has: { _ in false }).layers.first?.isGated ?? false
        let mlp = gated ? 4 * f : 2 * f
        let perLayerToken = 3 * h + qd + 2 * kvd + qd + h + mlp + c.numHeads * seqLen
        let activations = tokens * (c.numLayers * perLayerToken + h + 2 * c.vocabSize)
        return frozenBytes + 4 * (4 * parameters + activations)
    }

    public var table: String {
        func mib(_ b: Int) -> String { String(format: "%9.1f MiB", Double(b) / 1_048_576) }
        return """
        memory (ledger peaks)
          inference-only forward      \(mib(inferencePeakBytes))
        \("  ZO training, \(optimizer)".padding(toLength: 30, withPad: " ", startingAt: 0))\(mib(zoPeakBytes))   \(String(format: "%.3f", ratio))× inference
            of which optimizer state  \(mib(stateBytes))
          FO fine-tuning, Adam (est.) \(mib(foAdamBytes))   \(String(format: "%.1f", Double(foAdamBytes) / Double(max(1, inferencePeakBytes))))× inference
          weights                     \(mib(weightBytes))
        """
    }

    public var json: [String: Any] {
        ["zo_peak_bytes": zoPeakBytes, "inference_peak_bytes": inferencePeakBytes, "fo_adam_bytes": foAdamBytes,
         "weight_bytes": weightBytes, "zo_over_inference": (ratio * 1e4).rounded() / 1e4,
         "optimizer": optimizer, "state_bytes": stateBytes]
    }
}
