// The BPE model: a word (scalar values) → ids. Symbols start as single characters (or byte
// fallback / unk), then the adjacent pair with the lowest merge rank is merged first, leftmost on
// ties, exactly as `tokenizers`' Word::merge_all does with its priority queue.
import Foundation

final class BPEModel: Sendable {
    let vocab: [ScalarKey: Int32]
    /// Token spelling by id (nil where the id is not in the vocabulary).
    let idToToken: [[UInt32]?]
    /// Ids of single-character tokens, for the initial symbols.
    private let charIds: [UInt32: Int32]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    let unkId: Int32?
    let fuseUnk: Bool
    /// `<0xNN>` ids by byte (-1 where absent) when byte fallback is on.
    private let byteIds: [Int32]?
    let ignoreMerges: Bool
    private let prefix: [UInt32]?
    private let suffix: [UInt32]?
    private let cache = WordCache(capacity: 1 << 16)

    /// `merges` are (left, right) spellings in rank order; throws `MergeError` naming the index.
    init(vocab: [ScalarKey: Int32], spellings: [[UInt32]]? = nil, merges: [([UInt32], [UInt32])], rankOverride: [UInt32]? = nil,
         unkId: Int32?, fuseUnk: Bool, byteFallback: Bool, ignoreMerges: Bool,
         continuingSubwordPrefix: [UInt32]?, endOfWordSuffix: [UInt32]?) throws(MergeError) {
        self.vocab = vocab
        let maxId = vocab.values.max() ?? -1
        var idToToken = [[UInt32]?](repeating: nil, count: Int(maxId) + 1)
        var charIds: [UInt32: Int32] = [:]
        for (k, id) in vocab {
            idToToken[Int(id)] = k.scalars
            if k.scalars.count == 1 { charIds[k.scalars[0]] = id }
        }
        // Ids whose spelling is repeated later in the list still decode to it.
        if let spellings {
            for (i, t) in spellings.enumerated() where i < idToToken.count { idToToken[i] = t }
        }
        self.idToToken = idToToken
        self.charIds = charIds
        let prefixLen = continuingSubwordPrefix?.count ?? 0
        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(merges.count)
        for (i, (a, b)) in merges.enumerated() {
            guard let ia = vocab[ScalarKey(a)] else { throw MergeError(index: i, missing: a) }
            guard let ib = vocab[ScalarKey(b)] else { throw MergeError(index: i, missing: b) }
            let merged = a + b.dropFirst(min(prefixLen, b.count))
            guard let im = vocab[ScalarKey(merged)] else { throw MergeError(index: i, missing: merged) }
            let rank = rankOverride?[i] ?? UInt32(i)
            // A repeated pair keeps the later entry, as a Rust HashMap collected in order does.
            table[UInt64(UInt32(bitPattern: ia)) << 32 | UInt64(UInt32(bitPattern: ib))] =
                UInt64(rank) << 32 | UInt64(UInt32(bitPattern: im))
        }
        self.merges = table
        self.unkId = unkId
        self.fuseUnk = fuseUnk
        if byteFallback {
            self.byteIds = (0..<256).map { b in vocab[ScalarKey(String(format: "<0x%02X>", b))] ?? -1 }
        } else {
            self.byteIds = nil
        }
        self.ignoreMerges = ignoreMerges
        self.prefix = continuingSubwordPrefix.flatMap { $0.isEmpty ? nil : $0 }
        self.suffix = endOfWordSuffix.flatMap { $0.isEmpty ? nil : $0 }
    }

    struct MergeError: Error {
        let index: Int
        let missing: [UInt32]
    }

    func token(_ id: Int32) -> [UInt32]? {
        guard id >= 0, Int(id) < idToToken.count else { return nil }
        return idToToken[Int(id)]
    }

    /// Appends the ids of one pre-tokenized word.
    func tokenize(_ word: [UInt32], into out: inout [Int32]) {
        guard !word.isEmpty else { return }
        if ignoreMerges, let id = vocab[ScalarKey(word)] {
            out.append(id)
            return
        }
        // Long words (a whole SentencePiece fragment) are not worth caching.
        let cacheable = word.count <= 256
        let key = ScalarKey(word)
        if cacheable, let hit = cache.get(key) {
            out.append(contentsOf: hit)
            return
        }
        var symbols = initialSymbols(word)
        merge(&symbols)
        if cacheable { cache.put(key, symbols) }
        out.append(contentsOf: symbols)
    }

    private func initialSymbols(_ word: [UInt32]) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        var pendingUnk = false
        for (i, c) in word.enumerated() {
            var id: Int32?
            if prefix == nil && suffix == nil {
                id = charIds[c]
            } else {
                var s: [UInt32] = [c]
                if i > 0, let p = prefix { s = p + s }
                if i == word.count - 1, let x = suffix { s += x }
                id = vocab[ScalarKey(s)]
            }
            if let id {
                if pendingUnk, let u = unkId { symbols.append(u) }
                pendingUnk = false
                symbols.append(id)
                continue
            }
            if let byteIds {
                var utf8: [UInt8] = []
                TokText.appendUTF8(c, to: &utf8)
                // The prefix/suffix, if any, are spelled in bytes too (as `tokenizers` does).
                if i > 0, let p = prefix { utf8 = Array(TokText.string(p).utf8) + utf8 }
                if i == word.count - 1, let x = suffix { utf8 += Array(TokText.string(x).utf8) }
                if utf8.allSatisfy({ byteIds[Int($0)] >= 0 }) {
                    // A pending unk stays pending across byte tokens, as in `tokenizers`.
                    for b in utf8 { symbols.append(byteIds[Int(b)]) }
                    continue
                }
            }
            if let u = unkId {
                if pendingUnk && !fuseUnk { symbols.append(u) }
                pendingUnk = true
            }
        }
        if pendingUnk, let u = unkId { symbols.append(u) }
        return symbols
    }

    private struct Candidate: Comparable {
        var key: UInt64     // rank << 32 | position: smaller is better
        var newId: Int32
        static func < (a: Candidate, b: Candidate) -> Bool { a.key < b.key }
        static func == (a: Candidate, b: Candidate) -> Bool { a.key == b.key }
    }

    private func lookup(_ a: Int32, _ b: Int32) -> UInt64? {
        merges[UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))]
    }

    /// Applies the merges in place: lowest rank first, then leftmost.
    private func merge(_ symbols: inout [Int32]) {
        let n = symbols.count
        guard n > 1 else { return }
        var next = [Int32](repeating: 0, count: n)
        var prev = [Int32](repeating: 0, count: n)
        var alive = [Bool](repeating: true, count: n)
        for i in 0..<n {
            next[i] = Int32(i + 1)
            prev[i] = Int32(i - 1)
        }
        var heap = MergeHeap<Candidate>()
        for i in 0..<(n - 1) {
            if let m = lookup(symbols[i], symbols[i + 1]) {
                heap.push(Candidate(key: (m >> 32) << 32 | UInt64(i), newId: Int32(truncatingIfNeeded: m)))
            }
        }
        while let top = heap.pop() {
            let pos = Int(top.key & 0xFFFF_FFFF)
            guard alive[pos] else { continue }
            let right = Int(next[pos])
            guard right < n else { continue }
            // Stale entry: the pair at pos changed since it was queued.
            guard let m = lookup(symbols[pos], symbols[right]), Int32(truncatingIfNeeded: m) == top.newId else { continue }
            symbols[pos] = top.newId
            alive[right] = false
            let after = Int(next[right])
            next[pos] = Int32(after)
            if after < n { prev[after] = Int32(pos) }
            let before = Int(prev[pos])
            if before >= 0, let m2 = lookup(symbols[before], symbols[pos]) {
                heap.push(Candidate(key: (m2 >> 32) << 32 | UInt64(before), newId: Int32(truncatingIfNeeded: m2)))
            }
            if after < n, let m2 = lookup(symbols[pos], symbols[after]) {
                heap.push(Candidate(key: (m2 >> 32) << 32 | UInt64(pos), newId: Int32(truncatingIfNeeded: m2)))
            }
        }
        var out: [Int32] = []
        out.reserveCapacity(n)
        var i = 0
        while i < n {
            out.append(symbols[i])
            i = Int(next[i])
        }
        symbols = out
    }
}

/// A binary min-heap.
private struct MergeHeap<T: Comparable> {
    private var items: [T] = []

    mutating func push(_ x: T) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[i] < items[p] {
                items.swapAt(i, p)
                i = p
            } else {
                break
            }
        }
    }

    mutating func pop() -> T? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && items[l] < items[m] { m = l }
                if r < n && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}

/// Word → ids, shared by all threads using one tokenizer.
final class WordCache: @unchecked Sendable {
    private let lock = NSLock()
    private var map: [ScalarKey: [Int32]] = [:]
    private let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func get(_ key: ScalarKey) -> [Int32]? {
        lock.lock()
        defer { lock.unlock() }
        return map[key]
    }

    func put(_ key: ScalarKey, _ value: [Int32]) {
        lock.lock()
        defer { lock.unlock() }
        if map.count < capacity { map[key] = value }
    }
}
