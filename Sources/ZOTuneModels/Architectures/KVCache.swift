import ZOTuneBackend

/// Keys and values of past positions, per layer (B, capacity, Hkv, D), with the key mask and the
/// per-row position counters, so generation feeds one new token per step.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let batch: Int
    public let keys: [Tensor]
    public let values: [Tensor]
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

extension KVCache {
    /// Puts the prefix (P virtual positions) in front of every row: keys, values, mask 1, and the
    /// rows' position counters at P.
    func prefill(_ prefix: AttentionPrefix, backend: any Backend) throws {
        let p = prefix.length
        guard length == 0, p <= capacity else {
            throw ModelError(file: "kv-cache", field: "capacity", "a prefix of \(p) positions needs an empty cache with room for it")
        }
        for l in 0..<keys.count {
            KVCache.place(prefix: prefix.keys[l], stride: prefix.stride, length: p, then: nil, into: keys[l], span: capacity, batch: batch, backend: backend)
            KVCache.place(prefix: prefix.values[l], stride: prefix.stride, length: p, then: nil, into: values[l], span: capacity, batch: batch, backend: backend)
        }
        for b in 0..<batch { for t in 0..<p { hostMask[b * capacity + t] = 1 } }
        length = p
        realTokens = [Int32](repeating: Int32(p), count: batch)
    }

    /// Fills rows (B, span, kvDim) of `dst`: P prefix rows (row r at r·stride of `prefix`) in
    /// front of every sequence, then, if given, the batch's own rows `then` (B, span − P, kvDim).
    /// The prefix is copied once and then doubled (log₂ B copies, not B).
    static func place(prefix: Tensor, stride: Int, length p: Int, then rows: Tensor?, into dst: Tensor, span: Int, batch: Int,
                      backend be: any Backend) {
        let kvd = dst.count / (batch * span)
        be.copy2D(dst, ldd: kvd, from: prefix, lds: stride, rows: p, cols: kvd)
        var filled = 1
        while filled < batch {
            let m = min(filled, batch - filled)
            be.copy2D(dst.flatSlice(filled * span * kvd, dst.count - filled * span * kvd), ldd: span * kvd, from: dst, lds: span * kvd,
                      rows: m, cols: p * kvd)
            filled += m
        }
        if let rows {
            let t = span - p
            be.copy2D(dst.flatSlice(p * kvd, dst.count - p * kvd), ldd: span * kvd, from: rows, lds: t * kvd, rows: batch, cols: t * kvd)
        }
    }
}
