/// A batch of token sequences, left-padded to one length so that the last position of every row
/// is a real token (what scoring candidates and generation want).
public struct TokenBatch: Sendable, Equatable {
    /// (batch, length) row-major token ids; pads hold `padId`.
    public let ids: [Int32]
    /// (batch, length): 1 for real tokens, 0 for padding.
    public let mask: [UInt8]
    public let batch: Int
    public let length: Int

    public init(ids: [Int32], mask: [UInt8], batch: Int, length: Int) {
        precondition(ids.count == batch * length && mask.count == batch * length, "token batch is not \(batch)×\(length)")
        self.ids = ids
        self.mask = mask
        self.batch = batch
        self.length = length
    }

    /// Left-pads `sequences` to the longest one with `padId`.
    public static func leftPadded(_ sequences: [[Int32]], padId: Int32) -> TokenBatch {
        let length = sequences.map(\.count).max() ?? 0
        var ids: [Int32] = [], mask: [UInt8] = []
        ids.reserveCapacity(sequences.count * length)
        for s in sequences {
            ids += [Int32](repeating: padId, count: length - s.count) + s
            mask += [UInt8](repeating: 0, count: length - s.count) + [UInt8](repeating: 1, count: s.count)
        }
        return TokenBatch(ids: ids, mask: mask, batch: sequences.count, length: length)
    }

    public var tokenCount: Int { batch * length }
}
