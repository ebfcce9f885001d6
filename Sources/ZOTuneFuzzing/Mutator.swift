import Foundation
import ZOTuneTraining

/// Seeded structure-unaware mutations in the manner of AFL/libFuzzer's default mutators: bit
/// flips, interesting bytes and integers (sizes, counts and offsets live in little-endian u32/u64
/// fields of binary headers), deletions, insertions, duplications, truncation, splicing with
/// another seed, and text tokens that stress JSON/TSV/CSV readers. The same seed gives the same
/// inputs on every machine (SplitMix64).
public struct Mutator {
    var rng: DataRNG
    let maxSize: Int

    public init(seed: UInt64, maxSize: Int = 1 << 20) {
        rng = DataRNG(seed: seed)
        self.maxSize = maxSize
    }

    static let interesting8: [UInt8] = [0, 1, 0x7F, 0x80, 0xFF, 0x22, 0x5C, 0x0A, 0x09, 0x2C, 0x7B, 0x7D, 0x5B, 0x5D]
    static let interesting64: [UInt64] = [0, 1, 2, 7, 8, 0xFF, 0x100, 0x7FFF, 0xFFFF, 0x10000, 0x7FFF_FFFF, 0x8000_0000,
                                          0xFFFF_FFFF, 0x1_0000_0000, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, .max]
    static let tokens: [String] = ["null", "true", "-1", "1e309", "-0", "NaN", "[]", "{}", "\"\"", "\"", "\\u0000", "\\ud800",
                                   ",", ":", "\t", "\n", "\r\n", "{\"a\":", "[[[[", "]]]]", "99999999999999999999", "\u{FEFF}"]

    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : rng.below(n) }

    /// A mutant of `seed`; `others` are spliced from.
    public mutating func mutate(_ seed: [UInt8], others: [[UInt8]] = []) -> [UInt8] {
        var b = seed
        for _ in 0...below(6) { step(&b, others) }
        if b.count > maxSize { b.removeLast(b.count - maxSize) }
        return b
    }

    mutating func step(_ b: inout [UInt8], _ others: [[UInt8]]) {
        let n = b.count
        switch below(11) {
        case 0 where n > 0:   // flip a bit
            b[below(n)] ^= UInt8(1 << below(8))
        case 1 where n > 0:   // an interesting byte
            b[below(n)] = Self.interesting8[below(Self.interesting8.count)]
        case 2 where n >= 4:  // an interesting u32, aligned or not
            let at = below(n - 3), v = UInt32(truncatingIfNeeded: Self.interesting64[below(Self.interesting64.count)])
            withUnsafeBytes(of: v.littleEndian) { for i in 0..<4 { b[at + i] = $0[i] } }
        case 3 where n >= 8:  // an interesting u64 (GGUF counts and offsets are u64)
            let at = below(n - 7) & ~(below(2) == 0 ? 7 : 0), v = Self.interesting64[below(Self.interesting64.count)]
            withUnsafeBytes(of: v.littleEndian) { for i in 0..<8 { b[at + i] = $0[i] } }
        case 4 where n > 0:   // delete a range
            let at = below(n), len = 1 + below(min(n - at, 64))
            b.removeSubrange(at..<(at + len))
        case 5:               // insert random bytes
            let at = below(n + 1)
            b.insert(contentsOf: (0..<(1 + below(16))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
        case 6 where n > 0:   // duplicate a range
            let at = below(n), len = 1 + below(min(n - at, 256))
            b.insert(contentsOf: b[at..<(at + len)], at: below(n + 1))
        case 7 where n > 0:   // truncate
            b.removeLast(1 + below(n))
        case 8:               // a text token
            let t = Array(Self.tokens[below(Self.tokens.count)].utf8)
            let at = below(n + 1)
            if below(2) == 0, at < n { b.replaceSubrange(at..<min(n, at + t.count), with: t) } else { b.insert(contentsOf: t, at: at) }
        case 9 where !others.isEmpty:   // splice: our head with another seed's tail
            let o = others[below(others.count)]
            guard !o.isEmpty else { return }
            let cut = below(n + 1), from = below(o.count)
            b = Array(b[..<cut]) + o[from...]
        case 10 where n > 0:  // a digit run replaced (counts, labels, lengths in text formats)
            var found: Int?
            for _ in 0..<min(n, 64) {
                let j = below(n)
                if b[j] >= 0x30 && b[j] <= 0x39 { found = j; break }
            }
            guard let i = found else { return }
            let digits = Array(String(Self.interesting64[below(Self.interesting64.count)]).utf8)
            b.replaceSubrange(i..<(i + 1), with: digits)
        default:
            if n > 0 { b[below(n)] = UInt8(truncatingIfNeeded: rng.next()) }
        }
    }
}
