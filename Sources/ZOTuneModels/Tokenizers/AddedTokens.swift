// Added tokens (tokenizer.json `added_tokens`, GGUF control / user-defined tokens): the input is
// split on them before anything else, leftmost match first and the longest one at that position,
// as `tokenizers`' AddedVocabulary does with its leftmost-longest Aho-Corasick automaton.

struct AddedToken: Sendable {
    let id: Int32
    let content: [UInt32]
    let special: Bool
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    /// Matched after normalization (against `matchForm`) rather than in the raw text.
    let normalized: Bool
    /// What is matched: the content, normalized when `normalized`.
    var matchForm: [UInt32]
}

/// A trie over scalar values for leftmost-longest matching.
struct TokenTrie: Sendable {
    private var children: [[UInt32: Int32]] = [[:]]
    private var terminal: [Int32] = [-1]   // index into the token list, or -1

    var isEmpty: Bool { children[0].isEmpty }

    mutating func insert(_ s: [UInt32], value: Int32) {
        guard !s.isEmpty else { return }
        var node = 0
        for c in s {
            if let next = children[node][c] {
                node = Int(next)
            } else {
                children.append([:])
                terminal.append(-1)
                let next = Int32(children.count - 1)
                children[node][c] = next
                node = Int(next)
            }
        }
        terminal[node] = value
    }

    /// The longest match starting at `i`: (end, value).
    @inline(__always)
    func longest(in s: [UInt32], at i: Int) -> (Int, Int32)? {
        guard var node = children[0][s[i]].map(Int.init) else { return nil }
        var best: (Int, Int32)?
        var j = i + 1
        while true {
            if terminal[node] >= 0 { best = (j, terminal[node]) }
            guard j < s.count, let next = children[node][s[j]] else { break }
            node = Int(next)
            j += 1
        }
        return best
    }
}

struct AddedVocabulary: Sendable {
    let tokens: [AddedToken]
    private let rawTrie: TokenTrie
    private let normalizedTrie: TokenTrie
    let byId: [Int32: Int]
    let byContent: [ScalarKey: Int32]
    /// Contents of the special tokens (decode skips any token spelled like one).
    let specialContents: Set<ScalarKey>

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens
        var raw = TokenTrie(), norm = TokenTrie()
        var byId: [Int32: Int] = [:], byContent: [ScalarKey: Int32] = [:]
        var specials = Set<ScalarKey>()
        for (i, t) in tokens.enumerated() {
            if t.normalized { norm.insert(t.matchForm, value: Int32(i)) } else { raw.insert(t.content, value: Int32(i)) }
            byId[t.id] = i
            byContent[ScalarKey(t.content)] = t.id
            if t.special { specials.insert(ScalarKey(t.content)) }
        }
        self.rawTrie = raw
        self.normalizedTrie = norm
        self.byId = byId
        self.byContent = byContent
        self.specialContents = specials
    }

    var hasNormalized: Bool { !normalizedTrie.isEmpty }
    var hasRaw: Bool { !rawTrie.isEmpty }

    enum Segment {
        case token(Int32)
        case text(TextPiece)
    }

    /// Splits `piece` on the raw (`normalized == false`) or normalized added tokens.
    func split(_ piece: TextPiece, normalizedTokens: Bool, into out: inout [Segment]) {
        let trie = normalizedTokens ? normalizedTrie : rawTrie
        let s = piece.scalars
        let n = s.count
        func text(_ r: Range<Int>) {
            if !r.isEmpty { out.append(.text(TextPiece(scalars: Array(s[r]), atOrigin: piece.atOrigin && r.lowerBound == 0))) }
        }
        if trie.isEmpty {
            text(0..<n)
            return
        }
        var startOffset = 0
        var i = 0
        while i < n {
            guard let (end, index) = trie.longest(in: s, at: i) else {
                i += 1
                continue
            }
            let t = tokens[Int(index)]
            var start = i, stop = end
            i = end    // the scan resumes after the raw match, whatever strip does
            if t.singleWord {
                let startOK = start == 0 || !CharClass.isWordChar(s[start - 1])
                let stopOK = stop == n || !CharClass.isWordChar(s[stop])
                if !startOK || !stopOK { continue }
            }
            if t.lstrip {
                var k = start
                while k > 0 && CharClass.isSpace(s[k - 1]) { k -= 1 }
                start = max(k, startOffset)
            }
            if t.rstrip {
                while stop < n && CharClass.isSpace(s[stop]) { stop += 1 }
            }
            if startOffset < start { text(startOffset..<start) }
            out.append(.token(t.id))
            startOffset = stop
        }
        if startOffset < n { text(startOffset..<n) }
    }
}
