import Foundation

/// Minibatches of a run: step t takes examples t·B ..< (t+1)·B of an endless sequence made of one
/// seeded permutation of the training set per epoch. Derived from (data seed, step) alone, so a
/// resumed run sees the same batches; each epoch's permutation is built once.
public final class MinibatchSampler: @unchecked Sendable {
    public let count: Int
    public let batchSize: Int
    let seed: UInt64
    private var cached: (epoch: Int, order: [Int]) = (-1, [])

    public init(count: Int, batchSize: Int, dataSeed: UInt64) {
        precondition(count > 0 && batchSize > 0)
        self.count = count
        self.batchSize = batchSize
        seed = dataSeed ^ 0xDA7A
    }

    /// The training-set indices of step t.
    public func indices(step t: Int) -> [Int] {
        (0..<batchSize).map { i in
            let k = t * batchSize + i
            return permutation(epoch: k / count)[k % count]
        }
    }

    /// Fisher–Yates with a SplitMix-derived draw per position.
    func permutation(epoch: Int) -> [Int] {
        if cached.epoch == epoch { return cached.order }
        var order = Array(0..<count)
        var rng = stepSeed(runSeed: seed, step: epoch, direction: 0)
        for j in stride(from: count - 1, to: 0, by: -1) {
            rng = stepSeed(runSeed: rng, step: j, direction: 1)
            order.swapAt(j, Int(rng % UInt64(j + 1)))
        }
        cached = (epoch, order)
        return order
    }
}
