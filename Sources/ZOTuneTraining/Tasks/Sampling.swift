import Foundation

// Seeded, platform-independent sampling: the same data seed draws the same examples everywhere
// (no Foundation or stdlib randomness, whose algorithms may change).

/// SplitMix64 (Steele, Lea & Flood 2014), the generator behind data sampling.
public struct DataRNG: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in 0..<bound (bound > 0), by rejection so there is no modulo bias.
    public mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "below(_:) needs a positive bound")
        let b = UInt64(bound)
        let threshold = (0 &- b) % b  // 2^64 mod b: values under it would favour small results
        while true {
            let r = next()
            if r >= threshold { return Int(r % b) }
        }
    }
}

/// Fisher–Yates (forward form): position i takes a uniform pick among positions i..<n, so any
/// prefix of the result is a uniform sample without replacement.
public func seededShuffle<T>(_ items: [T], rng: inout DataRNG) -> [T] {
    var a = items
    if a.count > 1 {
        for i in 0..<(a.count - 1) { a.swapAt(i, i + rng.below(a.count - i)) }
    }
    return a
}

/// A permutation of 0..<count determined by `seed`.
public func seededPermutation(count: Int, seed: UInt64) -> [Int] {
    var rng = DataRNG(seed: seed)
    return seededShuffle(Array(0..<max(0, count)), rng: &rng)
}

/// The seed of one source (e.g. "rte/validation") under a data seed: FNV-1a of the label mixed
/// into the seed through one SplitMix64 step. Files of one task draw independent streams.
public func sourceSeed(dataSeed: UInt64, source: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in source.utf8 {
        h ^= UInt64(byte)
        h = h &* 0x0000_0100_0000_01B3
    }
    var rng = DataRNG(seed: dataSeed ^ h)
    return rng.next()
}

/// Counts to draw from `available` items for requests in priority order: the requests as they
/// are when they fit; otherwise each is scaled by available / total (rounded down) and what is
/// left goes one at a time to the earliest requests still short.
public func fitCounts(_ requested: [Int], available: Int) -> [Int] {
    let total = requested.reduce(0.0) { $0 + Double(max(0, $1)) }  // Double: no overflow on huge requests
    guard total > Double(available) else { return requested.map { max(0, $0) } }
    guard available > 0 else { return requested.map { _ in 0 } }
    var out = requested.map { min(max(0, $0), Int((Double(max(0, $0)) * Double(available) / total).rounded(.down))) }
    var left = available - out.reduce(0, +)
    while left > 0 {
        var gave = false
        for i in out.indices where left > 0 && out[i] < requested[i] {
            out[i] += 1; left -= 1; gave = true
        }
        if !gave { break }
    }
    return out
}
