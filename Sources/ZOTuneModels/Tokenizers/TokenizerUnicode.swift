// Unicode helpers for the tokenizers: character classes as the Oniguruma regexes of `tokenizers`
// see them (\p{L}, \p{N}, \s), the GPT-2 byte ↔ unicode table, and scalar-array keys.

/// Character class bits of one scalar.
enum CharClass {
    static let letter: UInt8 = 1      // \p{L}
    static let number: UInt8 = 2      // \p{N}
    static let space: UInt8 = 4       // \s (White_Space)

    private static let ascii: [UInt8] = (0..<128).map { slow(Unicode.Scalar(UInt8($0))) }

    private static func slow(_ s: Unicode.Scalar) -> UInt8 {
        let p = s.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return letter
        case .decimalNumber, .letterNumber, .otherNumber: return number
        default: return 0
        }
    }

    @inline(__always)
    static func of(_ c: UInt32) -> UInt8 {
        if c < 128 { return ascii[Int(c)] }
        guard let s = Unicode.Scalar(c) else { return 0 }
        return slow(s)
    }

    /// Rust regex's \w: alphabetic, marks, decimal digits, connector punctuation, join controls.
    static func isWordChar(_ c: UInt32) -> Bool {
        guard let s = Unicode.Scalar(c) else { return false }
        let p = s.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    static func isSpace(_ c: UInt32) -> Bool { of(c) & space != 0 }
}

/// GPT-2's reversible byte → printable character map (bytes that are printable map to themselves,
/// the others to U+0100 and up, in byte order).
enum ByteLevelTable {
    static let byteToChar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + n
                n += 1
            }
        }
        return table
    }()

    /// Indexed by scalar value below 0x144; -1 where the scalar is not in the table.
    static let charToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, c) in byteToChar.enumerated() { table[Int(c)] = Int16(b) }
        return table
    }()

    @inline(__always)
    static func byte(for c: UInt32) -> UInt8? {
        guard c < 0x144 else { return nil }
        let b = charToByte[Int(c)]
        return b < 0 ? nil : UInt8(b)
    }
}

/// A sequence of scalar values used as a dictionary key. Hashing and equality are on the exact
/// scalars (Swift String equality would merge canonically equivalent spellings).
struct ScalarKey: Hashable, Sendable {
    let scalars: [UInt32]

    init(_ scalars: [UInt32]) { self.scalars = scalars }
    init(_ s: String) { self.scalars = s.unicodeScalars.map(\.value) }

    func hash(into hasher: inout Hasher) {
        scalars.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (a: ScalarKey, b: ScalarKey) -> Bool { a.scalars == b.scalars }
}

/// Text helpers over scalar values (namespaced to stay out of other files' way).
enum TokText {
    /// The string made of exactly these scalar values (invalid ones become U+FFFD).
    static func string(_ scalars: some Sequence<UInt32>) -> String {
        var view = String.UnicodeScalarView()
        for v in scalars { view.append(Unicode.Scalar(v) ?? "\u{FFFD}") }
        return String(view)
    }

    /// Every non-overlapping occurrence of `pattern`, left to right, replaced by `content`.
    static func replaceAll(_ s: [UInt32], _ pattern: [UInt32], _ content: [UInt32]) -> [UInt32] {
        guard let first = pattern.first, s.count >= pattern.count else { return s }
        var out: [UInt32] = []
        out.reserveCapacity(s.count)
        var i = 0
        let n = s.count, m = pattern.count
        while i < n {
            if s[i] == first, i + m <= n, m == 1 || s[i..<i + m].elementsEqual(pattern) {
                out.append(contentsOf: content)
                i += m
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    static func appendUTF8(_ c: UInt32, to out: inout [UInt8]) {
        switch c {
        case 0..<0x80:
            out.append(UInt8(c))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (c >> 6)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (c >> 12)))
            out.append(UInt8(0x80 | ((c >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (c >> 18)))
            out.append(UInt8(0x80 | ((c >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((c >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (c & 0x3F)))
        }
    }
}

extension String {
    /// The scalar values of this string, exactly as stored.
    var tokScalars: [UInt32] { unicodeScalars.map(\.value) }
}
