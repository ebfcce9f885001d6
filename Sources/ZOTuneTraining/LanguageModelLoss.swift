import ZOTuneModels

/// Mean next-token cross-entropy over every position of `batch` (the work a PyTorch MeZO step on
/// causal-LM loss does): used by `bench step` and `memory`.
public func languageModelLoss(_ model: CausalLM, _ batch: TokenBatch) throws -> Double {
    var targets = [Int32](repeating: -1, count: batch.tokenCount)
    var count = 0
    for b in 0..<batch.batch {
        for t in 0..<(batch.length - 1) where batch.mask[b * batch.length + t] != 0 {
            targets[b * batch.length + t] = batch.ids[b * batch.length + t + 1]
            count += 1
        }
    }
    let lp = try model.tokenLogProbs(batch, targets: targets)
    return -lp.reduce(0.0) { $0 + Double($1) } / Double(max(1, count))
}

/// A reproducible batch of random token ids.
public func randomTokenBatch(batch: Int, length: Int, vocab: Int, seed: UInt64 = 0x5EED) -> TokenBatch {
    var state = seed
    let ids = (0..<(batch * length)).map { _ -> Int32 in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int32((state >> 33) % UInt64(vocab))
    }
    return TokenBatch(ids: ids, mask: [UInt8](repeating: 1, count: ids.count), batch: batch, length: length)
}

/// Next-token cross-entropy of each sequence of `batch` (mean over its predicted positions; left
/// padding allowed): per-sample losses for Zoop on a fixed batch (`bench step`, tests).
public func sequenceLosses(_ model: CausalLM, _ batch: TokenBatch) throws -> [Double] {
    var targets = [Int32](repeating: -1, count: batch.tokenCount)
    var counts = [Int](repeating: 0, count: batch.batch)
    for b in 0..<batch.batch {
        for t in 0..<(batch.length - 1) where batch.mask[b * batch.length + t] != 0 {
            targets[b * batch.length + t] = batch.ids[b * batch.length + t + 1]
            counts[b] += 1
        }
    }
    let lp = try model.tokenLogProbs(batch, targets: targets)
    return (0..<batch.batch).map { b in
        -lp[(b * batch.length)..<((b + 1) * batch.length)].reduce(0.0) { $0 + Double($1) } / Double(max(1, counts[b]))
    }
}

/// `sequenceLosses` as the score of one forward whose rows are the samples (a step context's
/// `scoreSamples` over a fixed batch).
public func sequenceScore(_ model: CausalLM, _ batch: TokenBatch) throws -> BatchScore {
    let l = try sequenceLosses(model, batch)
    return BatchScore(loss: l.reduce(0, +) / Double(max(1, l.count)), correct: 0, count: l.count, sampleLosses: l,
                      forwardOwners: [Array(0..<batch.batch)])
}
