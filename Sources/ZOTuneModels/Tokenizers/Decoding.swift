// Decoders (token spellings → text) and post-processors (special tokens around the ids) of the
// `tokenizers` library. Decoders chain over lists of tokens as in `tokenizers`; the final text
// is their concatenation.

indirect enum TokDecoder: Sendable {
    case sequence([TokDecoder])
    /// Byte-level characters → bytes → UTF-8 (lossy); tokens with other characters pass as their UTF-8.
    case byteLevel
    case replace(pattern: [UInt32], content: [UInt32])
    /// Runs of `<0xNN>` tokens → their UTF-8 text, or one U+FFFD per byte if invalid.
    case byteFallback
    case fuse
    /// Removes up to `start` leading and `stop` trailing `content` characters from each token.
    case strip(content: UInt32, start: Int, stop: Int)
    /// Replacement → space; the first token loses a leading one unless the scheme is "never".
    case metaspace(replacement: UInt32, stripFirst: Bool)
    /// End-of-word suffix → space (nothing after the last token).
    case bpeSuffix([UInt32])

    func decode(_ tokens: [[UInt32]]) -> [[UInt32]] {
        switch self {
        case .sequence(let list):
            var t = tokens
            for d in list { t = d.decode(t) }
            return t
        case .byteLevel:
            var bytes: [UInt8] = []
            for t in tokens {
                var mapped: [UInt8] = []
                mapped.reserveCapacity(t.count)
                var ok = true
                for c in t {
                    guard let b = ByteLevelTable.byte(for: c) else { ok = false; break }
                    mapped.append(b)
                }
                if ok {
                    bytes += mapped
                } else {
                    for c in t { TokText.appendUTF8(c, to: &bytes) }
                }
            }
            return [String(decoding: bytes, as: UTF8.self).tokScalars]
        case .replace(let pattern, let content):
            return tokens.map { TokText.replaceAll($0, pattern, content) }
        case .byteFallback:
            var out: [[UInt32]] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                let s = String(decoding: pending, as: UTF8.self)
                if s.utf8.elementsEqual(pending) {   // valid UTF-8 round-trips unchanged
                    out.append(s.tokScalars)
                } else {
                    for _ in pending { out.append([0xFFFD]) }
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = byteToken(t) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.flatMap { $0 }]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                var lo = 0
                while lo < min(start, t.count) && t[lo] == content { lo += 1 }
                var hi = t.count
                var k = 0
                while k < stop && hi > lo && t[hi - 1] == content {
                    hi -= 1
                    k += 1
                }
                return Array(t[lo..<hi])
            }
        case .metaspace(let replacement, let stripFirst):
            return tokens.enumerated().map { i, t in
                var out: [UInt32] = []
                out.reserveCapacity(t.count)
                for c in t {
                    if c == replacement {
                        if !(i == 0 && stripFirst) { out.append(0x20) }
                    } else {
                        out.append(c)
                    }
                }
                return out
            }
        case .bpeSuffix(let suffix):
            return tokens.enumerated().map { i, t in
                TokText.replaceAll(t, suffix, i == tokens.count - 1 ? [] : [0x20])
            }
        }
    }
}

/// The byte of a `<0xNN>` token (six bytes, as `tokenizers` checks it), or nil.
private func byteToken(_ t: [UInt32]) -> UInt8? {
    guard t.count == 6, t[0] == 0x3C, t[1] == 0x30, t[2] == 0x78, t[5] == 0x3E else { return nil }
    func hex(_ c: UInt32) -> UInt8? {
        switch c {
        case 0x30...0x39: return UInt8(c - 0x30)
        case 0x41...0x46: return UInt8(c - 0x41 + 10)
        case 0x61...0x66: return UInt8(c - 0x61 + 10)
        default: return nil
        }
    }
    guard let h = hex(t[3]), let l = hex(t[4]) else { return nil }
    return h << 4 | l
}

enum TemplateItem: Sendable {
    case sequence
    case special([Int32])
}

indirect enum TokPostProcessor: Sendable {
    case sequence([TokPostProcessor])
    /// `single` template of TemplateProcessing; RobertaProcessing / BertProcessing as cls $A sep.
    case template([TemplateItem])
    /// ByteLevel post-processing only trims offsets: no ids change.
    case passThrough

    func process(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .sequence(let list):
            var out = ids
            for p in list { out = p.process(out) }
            return out
        case .template(let items):
            var out: [Int32] = []
            out.reserveCapacity(ids.count + items.count)
            for item in items {
                switch item {
                case .sequence: out += ids
                case .special(let s): out += s
                }
            }
            return out
        case .passThrough:
            return ids
        }
    }

    /// The special ids placed before and after the sequence.
    var surrounding: (before: [Int32], after: [Int32]) {
        switch self {
        case .sequence(let list):
            var b: [Int32] = [], a: [Int32] = []
            for p in list {
                let s = p.surrounding
                b = s.before + b
                a += s.after
            }
            return (b, a)
        case .template(let items):
            var b: [Int32] = [], a: [Int32] = []
            var seen = false
            for item in items {
                switch item {
                case .sequence: seen = true
                case .special(let s): if seen { a += s } else { b += s }
                }
            }
            return (b, a)
        case .passThrough:
            return ([], [])
        }
    }
}
