import Foundation
import ZOTuneBackend

/// How the next token is picked: greedy when temperature is 0, else temperature + nucleus (top-p)
/// sampling from a seeded generator (same seed, same text).
public struct SamplingOptions: Sendable {
    public var temperature: Float
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingOptions()
}

/// SplitMix64: a small, well-mixed generator for sampling (not for the z stream).
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
}

extension CausalLM {
    /// Continues each prompt by up to `maxNewTokens` tokens with a KV cache (one forward over the
    /// left-padded prompts, then one token per step). A row stops at any of `stopIds`; the returned
    /// continuations exclude the prompt and the stop token. `onStep` sees each step's new tokens.
    public func generate(_ prompts: [[Int32]], maxNewTokens: Int, sampling: SamplingOptions = .greedy,
                         stopIds: Set<Int32> = [], padId: Int32 = 0,
                         onStep: (([Int32]) -> Void)? = nil) throws -> [[Int32]] {
        let batch = TokenBatch.leftPadded(prompts, padId: padId)
        let capacity = batch.length + maxNewTokens
        if config.architecture.family.hasLearnedPositions, capacity > config.maxPositions {
            throw ModelError(file: "input", field: "max tokens", "prompt + new tokens (\(capacity)) exceed the model's \(config.maxPositions) positions")
        }
        let cache = try makeCache(batch: prompts.count, capacity: capacity)
        var rng = SplitMix64(state: sampling.seed)
        var outputs = [[Int32]](repeating: [], count: prompts.count)
        var done = [Bool](repeating: false, count: prompts.count)
        var logits = try lastLogits(batch, cache: cache)
        for _ in 0..<maxNewTokens {
            let host = try backend.read(logits)
            var next = [Int32](repeating: padId, count: prompts.count)
            for b in 0..<prompts.count {
                let row = host[(b * config.vocabSize)..<((b + 1) * config.vocabSize)]
                next[b] = pick(Array(row), sampling, &rng)
                if !done[b] {
                    if stopIds.contains(next[b]) { done[b] = true } else { outputs[b].append(next[b]) }
                }
            }
            onStep?(next)
            if done.allSatisfy({ $0 }) { break }
            let step = TokenBatch(ids: next, mask: [UInt8](repeating: 1, count: prompts.count), batch: prompts.count, length: 1)
            logits = try lastLogits(step, cache: cache)
        }
        return outputs
    }

    func pick(_ logits: [Float], _ s: SamplingOptions, _ rng: inout SplitMix64) -> Int32 {
        if s.temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        let m = logits.max() ?? 0
        var probs = logits.enumerated().map { ($0.offset, exp(Double(($0.element - m) / s.temperature))) }
        let total = probs.reduce(0) { $0 + $1.1 }
        probs.sort { $0.1 > $1.1 }
        // Nucleus: the smallest prefix whose mass reaches top-p.
        var kept = 0, mass = 0.0
        while kept < probs.count && (kept == 0 || mass < Double(s.topP) * total) {
            mass += probs[kept].1
            kept += 1
        }
        var r = rng.uniform() * mass
        for (id, p) in probs[0..<kept] {
            r -= p
            if r <= 0 { return Int32(id) }
        }
        return Int32(probs[kept - 1].0)
    }
}
