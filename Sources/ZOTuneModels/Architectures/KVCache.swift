import ZOTuneBackend

/// Keys and values of past positions, per layer (B, capacity, Hkv, D), with the key mask and the
/// per-row position counters, so generation feeds one new token per step.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let batch: Int
    let keys: [Tensor]
    let values: [Tensor]
    /// (B, capacity) u8 on the backend, mirrored on the host.
    let mask: Tensor
    var hostMask: [UInt8]
    /// Positions used so far.
    public private(set) var length = 0
    /// Real (unpadded) tokens seen so far per row: the next position id.
    var realTokens: [Int32]

    init(config: ModelConfig, batch: Int, capacity: Int, backend: any Backend) throws {
        self.capacity = capacity
        self.batch = batch
        let shape = [batch, capacity, config.numKVHeads, config.headDim]
        keys = try (0..<config.numLayers).map { _ in try backend.allocate(shape, tag: .workspace) }
        values = try (0..<config.numLayers).map { _ in try backend.allocate(shape, tag: .workspace) }
        mask = try backend.allocate([batch, capacity], dtype: .u8, tag: .workspace)
        hostMask = [UInt8](repeating: 0, count: batch * capacity)
        realTokens = [Int32](repeating: 0, count: batch)
    }

    /// Records the mask of `batch` appended at the end and returns the keys' valid length after it.
    func append(_ tokens: TokenBatch, backend: any Backend) throws -> Int {
        guard tokens.batch == batch else { throw ModelError(file: "kv-cache", field: "batch", "\(tokens.batch) rows for a cache of \(batch)") }
        guard length + tokens.length <= capacity else {
            throw ModelError(file: "kv-cache", field: "capacity", "\(length + tokens.length) positions exceed the cache's \(capacity)")
        }
        for b in 0..<batch {
            for t in 0..<tokens.length { hostMask[b * capacity + length + t] = tokens.mask[b * tokens.length + t] }
        }
        hostMask.withUnsafeBytes { backend.copy(mask, fromHost: $0) }
        length += tokens.length
        return length
    }
}
