// Normalizers and pre-tokenizers of the `tokenizers` library, over arrays of scalar values.
// The split regexes are hand-written state machines that reproduce what Oniguruma's
// leftmost-first alternation (with its backtracking into `\s+(?!\S)`) matches.
import Foundation

/// A piece of text on its way to the model. `atOrigin`: it starts at offset 0 of the input
/// (Metaspace's "first" prepend scheme only prepends there).
struct TextPiece {
    var scalars: [UInt32]
    var atOrigin: Bool
}

// MARK: - Normalizers

indirect enum TokNormalizer: Sendable {
    case sequence([TokNormalizer])
    case prepend([UInt32])
    case replace(pattern: [UInt32], content: [UInt32])
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case strip(left: Bool, right: Bool)

    func apply(_ s: inout [UInt32]) {
        switch self {
        case .sequence(let list):
            for n in list { n.apply(&s) }
        case .prepend(let p):
            if !s.isEmpty { s.insert(contentsOf: p, at: 0) }
        case .replace(let pattern, let content):
            s = TokText.replaceAll(s, pattern, content)
        case .nfc: s = TokText.string(s).precomposedStringWithCanonicalMapping.tokScalars
        case .nfd: s = TokText.string(s).decomposedStringWithCanonicalMapping.tokScalars
        case .nfkc: s = TokText.string(s).precomposedStringWithCompatibilityMapping.tokScalars
        case .nfkd: s = TokText.string(s).decomposedStringWithCompatibilityMapping.tokScalars
        case .lowercase: s = TokText.string(s).lowercased().tokScalars
        case .strip(let left, let right):
            var lo = 0, hi = s.count
            if left { while lo < hi, CharClass.isSpace(s[lo]) { lo += 1 } }
            if right { while hi > lo, CharClass.isSpace(s[hi - 1]) { hi -= 1 } }
            if lo != 0 || hi != s.count { s = Array(s[lo..<hi]) }
        }
    }
}

// MARK: - Pre-tokenizers

/// The split regexes we know how to run (recognized by their exact pattern text).
enum SplitRegex: Sendable, Equatable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// Llama-3 (`maxDigits` 3) and Qwen2 (`maxDigits` 1):
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3(maxDigits: Int)

    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init?(pattern: String) {
        // Compare scalars exactly; String == would do canonical equivalence.
        let p = pattern.tokScalars
        if p == SplitRegex.gpt2Pattern.tokScalars {
            self = .gpt2
        } else if p == SplitRegex.llama3Pattern.tokScalars {
            self = .llama3(maxDigits: 3)
        } else if p == SplitRegex.qwen2Pattern.tokScalars {
            self = .llama3(maxDigits: 1)
        } else {
            return nil
        }
    }

    /// Calls `emit` with each match, left to right; together they cover `s` (these patterns match any character).
    func split(_ s: [UInt32], _ emit: (Range<Int>) -> Void) {
        let n = s.count
        guard n > 0 else { return }
        var cls = [UInt8](repeating: 0, count: n)
        for i in 0..<n { cls[i] = CharClass.of(s[i]) }
        @inline(__always) func isL(_ i: Int) -> Bool { i < n && cls[i] & CharClass.letter != 0 }
        @inline(__always) func isN(_ i: Int) -> Bool { i < n && cls[i] & CharClass.number != 0 }
        @inline(__always) func isS(_ i: Int) -> Bool { i < n && cls[i] & CharClass.space != 0 }
        @inline(__always) func isO(_ i: Int) -> Bool { i < n && cls[i] == 0 }  // [^\s\p{L}\p{N}]
        @inline(__always) func isNL(_ i: Int) -> Bool { i < n && (s[i] == 0x0A || s[i] == 0x0D) }
        let apostrophe: UInt32 = 0x27, space: UInt32 = 0x20

        /// Length of a contraction at i ('s 't 're 've 'm 'll 'd), or 0.
        func contraction(_ i: Int, caseless: Bool) -> Int {
            guard s[i] == apostrophe, i + 1 < n else { return 0 }
            func low(_ c: UInt32) -> UInt32 {
                guard caseless else { return c }
                if c >= 0x41 && c <= 0x5A { return c + 32 }
                if c == 0x17F { return 0x73 }  // ſ folds to s
                return c
            }
            let a = low(s[i + 1])
            if a == 0x73 || a == 0x74 || a == 0x6D || a == 0x64 { return 2 }  // s t m d
            guard i + 2 < n else { return 0 }
            let b = low(s[i + 2])
            if (a == 0x72 && b == 0x65) || (a == 0x76 && b == 0x65) || (a == 0x6C && b == 0x6C) { return 3 }  // re ve ll
            return 0
        }

        /// `\s+(?!\S)|\s+` at a whitespace character.
        func spaces(_ i: Int) -> Int {
            var j = i
            while isS(j) { j += 1 }
            if j == n || j - i == 1 { return j }   // at the end, or a lone space before a non-space
            return j - 1                            // give the last space to the next word
        }

        var i = 0
        while i < n {
            var j: Int
            switch self {
            case .gpt2:
                let c = contraction(i, caseless: false)
                if c > 0 {
                    j = i + c
                } else if isL(i) || (s[i] == space && isL(i + 1)) {
                    j = i + 1
                    while isL(j) { j += 1 }
                } else if isN(i) || (s[i] == space && isN(i + 1)) {
                    j = i + 1
                    while isN(j) { j += 1 }
                } else if isO(i) || (s[i] == space && isO(i + 1)) {
                    j = i + 1
                    while isO(j) { j += 1 }
                } else {
                    j = spaces(i)
                }
            case .llama3(let maxDigits):
                let c = contraction(i, caseless: true)
                if c > 0 {
                    j = i + c
                } else if isL(i) || (!isNL(i) && !isL(i) && !isN(i) && isL(i + 1)) {
                    // [^\r\n\p{L}\p{N}]?\p{L}+
                    j = i + 1
                    while isL(j) { j += 1 }
                } else if isN(i) {
                    j = i + 1
                    while j < i + maxDigits && isN(j) { j += 1 }
                } else if isO(i) || (s[i] == space && isO(i + 1)) {
                    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
                    j = i + 1
                    while isO(j) { j += 1 }
                    while isNL(j) { j += 1 }
                } else {
                    // Whitespace: `\s*[\r\n]+` ends at the last newline of the run, if any.
                    var end = i
                    while isS(end) { end += 1 }
                    var lastNL = -1
                    for k in i..<end where isNL(k) { lastNL = k }
                    j = lastNL >= 0 ? lastNL + 1 : spaces(i)
                }
            }
            emit(i..<j)
            i = j
        }
    }
}

enum PrependScheme: Sendable { case first, always, never }

indirect enum TokPreTokenizer: Sendable {
    case sequence([TokPreTokenizer])
    /// Optional prefix space, the GPT-2 split when `useRegex`, then bytes → byte-level characters.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// Numbers split off: each digit alone (`individual`) or runs of digits.
    case digits(individual: Bool)
    case metaspace(replacement: UInt32, scheme: PrependScheme, split: Bool)
    /// A known regex, matches kept as pieces ("isolated").
    case split(SplitRegex)

    /// Pieces in, pieces out (empty pieces are dropped, as `tokenizers` does).
    func apply(_ pieces: [TextPiece]) -> [TextPiece] {
        switch self {
        case .sequence(let list):
            var p = pieces
            for t in list { p = t.apply(p) }
            return p
        default:
            var out: [TextPiece] = []
            out.reserveCapacity(pieces.count)
            for p in pieces { applyOne(p, into: &out) }
            return out
        }
    }

    private func applyOne(_ piece: TextPiece, into out: inout [TextPiece]) {
        let s = piece.scalars
        switch self {
        case .sequence:
            out.append(contentsOf: apply([piece]))
        case .byteLevel(let addPrefixSpace, let useRegex):
            var text = s
            if addPrefixSpace && text.first != 0x20 { text.insert(0x20, at: 0) }
            if useRegex {
                var first = true
                SplitRegex.gpt2.split(text) { r in
                    out.append(TextPiece(scalars: byteLevelChars(text[r]), atOrigin: piece.atOrigin && first))
                    first = false
                }
            } else if !text.isEmpty {
                out.append(TextPiece(scalars: byteLevelChars(text[...]), atOrigin: piece.atOrigin))
            }
        case .digits(let individual):
            var start = 0
            var i = 0
            let n = s.count
            func emit(_ r: Range<Int>) {
                if !r.isEmpty { out.append(TextPiece(scalars: Array(s[r]), atOrigin: piece.atOrigin && r.lowerBound == 0)) }
            }
            while i < n {
                if CharClass.of(s[i]) & CharClass.number != 0 {
                    emit(start..<i)
                    var j = i + 1
                    if !individual { while j < n && CharClass.of(s[j]) & CharClass.number != 0 { j += 1 } }
                    emit(i..<j)
                    start = j
                    i = j
                } else {
                    i += 1
                }
            }
            emit(start..<n)
        case .metaspace(let replacement, let scheme, let split):
            var text = s.map { $0 == 0x20 ? replacement : $0 }
            switch scheme {
            case .always: if text.first != replacement { text.insert(replacement, at: 0) }
            case .first: if text.first != replacement && piece.atOrigin { text.insert(replacement, at: 0) }
            case .never: break
            }
            guard !text.isEmpty else { return }
            if !split {
                out.append(TextPiece(scalars: text, atOrigin: piece.atOrigin))
                return
            }
            // Each replacement character starts a new piece ("merged with next").
            var start = 0
            for i in 1..<max(1, text.count) where text[i] == replacement {
                out.append(TextPiece(scalars: Array(text[start..<i]), atOrigin: piece.atOrigin && start == 0))
                start = i
            }
            out.append(TextPiece(scalars: Array(text[start...]), atOrigin: piece.atOrigin && start == 0))
        case .split(let regex):
            regex.split(s) { r in
                out.append(TextPiece(scalars: Array(s[r]), atOrigin: piece.atOrigin && r.lowerBound == 0))
            }
        }
    }
}

/// The UTF-8 bytes of `s`, each spelled as its byte-level character.
func byteLevelChars(_ s: ArraySlice<UInt32>) -> [UInt32] {
    var out: [UInt32] = []
    out.reserveCapacity(s.count)
    let table = ByteLevelTable.byteToChar
    for c in s {
        switch c {
        case 0..<0x80:
            out.append(table[Int(c)])
        case 0x80..<0x800:
            out.append(table[Int(0xC0 | (c >> 6))])
            out.append(table[Int(0x80 | (c & 0x3F))])
        case 0x800..<0x10000:
            out.append(table[Int(0xE0 | (c >> 12))])
            out.append(table[Int(0x80 | ((c >> 6) & 0x3F))])
            out.append(table[Int(0x80 | (c & 0x3F))])
        default:
            out.append(table[Int(0xF0 | (c >> 18))])
            out.append(table[Int(0x80 | ((c >> 12) & 0x3F))])
            out.append(table[Int(0x80 | ((c >> 6) & 0x3F))])
            out.append(table[Int(0x80 | (c & 0x3F))])
        }
    }
    return out
}
