// Exports a GGUF's tokenizer (`tokenizer.ggml.*`) as Hugging Face files: tokenizer.json (the
// `tokenizers` library format, version "1.0"), tokenizer_config.json and special_tokens_map.json,
// so that `transformers.AutoTokenizer` and `tokenizers.Tokenizer` load what llama.cpp runs.
// The JSON text is written by hand: vocabulary keys keep their exact scalars (Swift String keys
// would merge canonically equivalent spellings) and merges stay in rank order.
import Foundation

/// The Hugging Face tokenizer files for a GGUF tokenizer: tokenizer.json, tokenizer_config.json
/// and special_tokens_map.json (nil when the GGUF names no special token).
/// - "gpt2": byte-level BPE with the GGUF's merges; the pre-tokenizer follows `pre` (see
///   `GGUFTokenizerPipeline.preTokenizer`), ByteLevel decoder.
/// - "llama": SentencePiece-style BPE (byte fallback, fused unk, "▁" normalizer); merges are the
///   file's, else derived from vocabulary and scores in the order transformers' GGUF loader uses.
/// Control (3) and unknown (2) tokens become special added tokens, user-defined (4) plain ones.
/// `modelMaxLength` goes to tokenizer_config.json (the model's context length); `file` names the
/// source in errors.
public func huggingFaceTokenizerFiles(from data: GGUFTokenizerData, modelMaxLength: Int? = nil, file: String = "GGUF")
    throws -> (tokenizerJSON: Data, tokenizerConfigJSON: Data, specialTokensMapJSON: Data?) {
    let export = try HFTokenizerExport(data, file: file)
    return (export.tokenizerJSON(), export.tokenizerConfigJSON(modelMaxLength: modelMaxLength), export.specialTokensMapJSON())
}

/// The same for a GGUF file; model_max_length is its `<architecture>.context_length`.
public func huggingFaceTokenizerFiles(from gguf: GGUFFile)
    throws -> (tokenizerJSON: Data, tokenizerConfigJSON: Data, specialTokensMapJSON: Data?) {
    let context = try gguf.architecture.flatMap { try gguf.int($0 + ".context_length") }
    return try huggingFaceTokenizerFiles(from: try gguf.tokenizerData(), modelMaxLength: context, file: gguf.path)
}

/// Writes tokenizer.json, tokenizer_config.json and (when any) special_tokens_map.json into
/// `directory`, which must exist.
public func writeHuggingFaceTokenizerFiles(
    _ files: (tokenizerJSON: Data, tokenizerConfigJSON: Data, specialTokensMapJSON: Data?), to directory: URL) throws {
    try files.tokenizerJSON.write(to: directory.appendingPathComponent("tokenizer.json"))
    try files.tokenizerConfigJSON.write(to: directory.appendingPathComponent("tokenizer_config.json"))
    if let map = files.specialTokensMapJSON {
        try map.write(to: directory.appendingPathComponent("special_tokens_map.json"))
    }
}

// MARK: - The pipeline a GGUF vocabulary implies

/// What llama.cpp does with a GGUF vocabulary, beyond the vocabulary itself.
/// NOTE: BPETokenizer.init(gguf:) keeps its own copy of the `pre` mapping; the two must agree
/// (TokenizerExportTests checks the ids of both).
enum GGUFTokenizerPipeline {
    /// Pre-types whose vocabularies split digits individually (StarCoder-style).
    static let digitSplitting: Set<String> = ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"]
    /// Pre-types using the Llama-3 regex.
    static let llama3Split: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe"]
    /// Pre-types using the Qwen2 regex (Llama-3's with single digits).
    static let qwen2Split: Set<String> = ["qwen2", "deepseek-r1-qwen"]
    /// llama.cpp's LLAMA3 pre-type: whole words found in the vocabulary skip the merges, and BOS
    /// is added unless the file says otherwise.
    static let llama3Type: Set<String> = ["llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"]

    /// The pre-tokenizer of a byte-level ("gpt2") vocabulary; unknown names get the GPT-2 regex.
    static func preTokenizer(pre: String?) -> TokPreTokenizer {
        let name = pre ?? ""
        if digitSplitting.contains(name) {
            return .sequence([.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)])
        }
        if llama3Split.contains(name) {
            return .sequence([.split(.llama3(maxDigits: 3)), .byteLevel(addPrefixSpace: false, useRegex: false)])
        }
        if qwen2Split.contains(name) {
            return .sequence([.split(.llama3(maxDigits: 1)), .byteLevel(addPrefixSpace: false, useRegex: false)])
        }
        return .byteLevel(addPrefixSpace: false, useRegex: true)
    }

    /// SentencePiece ("llama"): "▁" for every space, and before the text unless the file says
    /// `add_space_prefix` false (Gemma), whose decoder then keeps a leading space.
    static func sentencePieceNormalizer(_ data: GGUFTokenizerData) -> TokNormalizer {
        data.addSpacePrefix == false ? .replace(pattern: [0x20], content: [0x2581])
            : .sequence([.prepend([0x2581]), .replace(pattern: [0x20], content: [0x2581])])
    }
    static func sentencePieceDecoder(_ data: GGUFTokenizerData) -> TokDecoder {
        let base: [TokDecoder] = [.replace(pattern: [0x2581], content: [0x20]), .byteFallback, .fuse]
        return .sequence(data.addSpacePrefix == false ? base : base + [.strip(content: 0x20, start: 1, stop: 0)])
    }

    static func ignoresMerges(_ data: GGUFTokenizerData) -> Bool {
        data.model == "gpt2" && llama3Type.contains(data.pre ?? "")
    }

    /// llama.cpp's default when `add_bos_token` is absent: on for SentencePiece and LLAMA3 vocabularies.
    static func addsBos(_ data: GGUFTokenizerData) -> Bool {
        data.addBos ?? (data.model == "llama" || ignoresMerges(data))
    }
}

// MARK: - Building the files

private struct HFTokenizerExport {
    let data: GGUFTokenizerData
    let file: String
    let byteLevel: Bool
    /// Vocabulary spellings by id (byte-level ones respelled into the byte alphabet).
    let spellings: [[UInt32]]
    /// Spelling → id; a repeated spelling keeps its last id (as a JSON object or dict would).
    let vocab: [ScalarKey: Int]
    let merges: [([UInt32], [UInt32])]
    let bos: Int?, eos: Int?, pad: Int?, unk: Int?
    let addBos: Bool, addEos: Bool

    private static let p = "tokenizer.ggml."

    init(_ data: GGUFTokenizerData, file: String) throws {
        let p = Self.p
        self.data = data
        self.file = file
        switch data.model {
        case "gpt2": byteLevel = true
        case "llama": byteLevel = false
        default: throw ModelError(file: file, field: p + "model", "unsupported tokenizer model \"\(data.model)\" (gpt2 or llama)")
        }
        let tokens = data.tokens.map(\.tokScalars)
        guard !tokens.isEmpty else { throw ModelError(file: file, field: p + "tokens", "empty vocabulary") }
        if !data.tokenTypes.isEmpty && data.tokenTypes.count != tokens.count {
            throw ModelError(file: file, field: p + "token_type", "\(data.tokenTypes.count) entries for \(tokens.count) tokens")
        }
        func checkId(_ id: Int?, _ key: String) throws -> Int? {
            guard let id else { return nil }
            guard id >= 0 && id < tokens.count else {
                throw ModelError(file: file, field: p + key, "token id \(id) is outside the \(tokens.count)-token vocabulary")
            }
            return id
        }
        bos = try checkId(data.bosId, "bos_token_id")
        eos = try checkId(data.eosId, "eos_token_id")
        pad = try checkId(data.padId, "padding_token_id")
        unk = try checkId(data.unknownId, "unknown_token_id") ?? data.tokenTypes.firstIndex(of: 2)
        addBos = bos != nil && GGUFTokenizerPipeline.addsBos(data)
        addEos = eos != nil && (data.addEos ?? false)

        var spellings = tokens
        if byteLevel {
            for (i, t) in tokens.enumerated() where t.contains(where: { ByteLevelTable.byte(for: $0) == nil }) {
                spellings[i] = byteLevelChars(t[...])
            }
        }
        var vocab: [ScalarKey: Int] = [:]
        vocab.reserveCapacity(spellings.count)
        for (i, t) in spellings.enumerated() { vocab[ScalarKey(t)] = i }
        self.spellings = spellings
        self.vocab = vocab

        if !data.merges.isEmpty {
            var merges: [([UInt32], [UInt32])] = []
            merges.reserveCapacity(data.merges.count)
            for (i, m) in data.merges.enumerated() {
                let parts = m.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                let field = "\(p)merges[\(i)]"
                guard parts.count == 2 else { throw ModelError(file: file, field: field, "expected \"left right\", got \"\(m)\"") }
                let l = parts[0].map(\.value), r = parts[1].map(\.value)
                // `tokenizers` refuses a merge whose parts or result are not in the vocabulary.
                for piece in [l, r, l + r] where vocab[ScalarKey(piece)] == nil {
                    throw ModelError(file: file, field: field, "\"\(TokText.string(piece))\" is not in \(p)tokens")
                }
                merges.append((l, r))
            }
            self.merges = merges
        } else if !byteLevel {
            guard data.scores.count == tokens.count else {
                throw ModelError(file: file, field: p + "scores", "needed to derive merges: \(data.scores.count) scores for \(tokens.count) tokens")
            }
            merges = Self.mergesFromScores(spellings: spellings, vocab: vocab, scores: data.scores)
        } else {
            throw ModelError(file: file, field: p + "merges", "missing: a gpt2 vocabulary needs merges")
        }
    }

    /// SentencePiece merges recovered from the vocabulary, ordered as transformers'
    /// `generate_merges` orders them: by the merged token's score (highest first), then longer
    /// left part, then longer right part; ties keep token order, then (left id, right id).
    /// `tokenizers` ranks every merge apart, so where llama.cpp breaks a score tie by position
    /// (leftmost first) the exported file may merge differently; this matches transformers.
    static func mergesFromScores(spellings: [[UInt32]], vocab: [ScalarKey: Int], scores: [Float]) -> [([UInt32], [UInt32])] {
        struct Candidate { let left: [UInt32], right: [UInt32], score: Float, order: Int }
        var found: [Candidate] = []
        var seen = Set<ScalarKey>()
        for t in spellings where t.count >= 2 {
            let key = ScalarKey(t)
            guard seen.insert(key).inserted, let id = vocab[key] else { continue }   // first position, last score
            var local: [(l: [UInt32], r: [UInt32], li: Int, ri: Int)] = []
            for k in 1..<t.count {
                let l = Array(t[..<k]), r = Array(t[k...])
                if let li = vocab[ScalarKey(l)], let ri = vocab[ScalarKey(r)] { local.append((l, r, li, ri)) }
            }
            local.sort { ($0.li, $0.ri) < ($1.li, $1.ri) }
            for m in local { found.append(Candidate(left: m.l, right: m.r, score: scores[id], order: found.count)) }
        }
        found.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.left.count != b.left.count { return a.left.count > b.left.count }
            if a.right.count != b.right.count { return a.right.count > b.right.count }
            return a.order < b.order
        }
        return found.map { ($0.left, $0.right) }
    }

    func content(_ id: Int) -> HFJSON { .string(data.tokens[id].tokScalars) }

    // MARK: tokenizer.json

    func tokenizerJSON() -> Data {
        var added: [HFJSON] = []
        for (i, t) in data.tokenTypes.enumerated() where (t == 2 || t == 3 || t == 4) && !data.tokens[i].isEmpty {
            added.append(.object([
                ("id", .int(i)), ("content", content(i)), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                ("rstrip", .bool(false)), ("normalized", .bool(false)), ("special", .bool(t != 4)),
            ]))
        }
        let normalizer: HFJSON, preTokenizer: HFJSON, decoder: HFJSON
        if byteLevel {
            normalizer = .null
            preTokenizer = HFJSON(GGUFTokenizerPipeline.preTokenizer(pre: data.pre))
            decoder = HFJSON(TokDecoder.byteLevel)
        } else {
            normalizer = HFJSON(GGUFTokenizerPipeline.sentencePieceNormalizer(data))
            preTokenizer = .null
            decoder = HFJSON(GGUFTokenizerPipeline.sentencePieceDecoder(data))
        }

        // Vocabulary in id order; an earlier id whose spelling repeats later is left out.
        var vocabMembers: [([UInt32], HFJSON)] = []
        vocabMembers.reserveCapacity(spellings.count)
        for (i, t) in spellings.enumerated() where vocab[ScalarKey(t)] == i { vocabMembers.append((t, .int(i))) }
        let model = HFJSON.object([
            ("type", .str("BPE")), ("dropout", .null),
            ("unk_token", !byteLevel && unk != nil ? .string(spellings[unk!]) : .null),
            ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null),
            ("fuse_unk", .bool(!byteLevel)),
            ("byte_fallback", .bool(!byteLevel && vocab[ScalarKey("<0x00>")] != nil)),
            ("ignore_merges", .bool(GGUFTokenizerPipeline.ignoresMerges(data))),
            ("vocab", .members(vocabMembers)),
            ("merges", .array(mergeList())),
        ])
        let root = HFJSON.object([
            ("version", .str("1.0")), ("truncation", .null), ("padding", .null),
            ("added_tokens", .array(added)), ("normalizer", normalizer), ("pre_tokenizer", preTokenizer),
            ("post_processor", postProcessor()), ("decoder", decoder), ("model", model),
        ])
        return root.serialized()
    }

    /// Merges as "left right" strings, which every `tokenizers` version reads; as [left, right]
    /// pairs (tokenizers >= 0.20) when some part contains a space.
    func mergeList() -> [HFJSON] {
        if merges.contains(where: { $0.0.contains(0x20) || $0.1.contains(0x20) }) {
            return merges.map { .array([.string($0.0), .string($0.1)]) }
        }
        return merges.map { .string($0.0 + [0x20] + $0.1) }
    }

    /// TemplateProcessing with BOS / EOS as the GGUF asks; byte-level vocabularies without them get
    /// GPT-2's ByteLevel processor (offsets only).
    func postProcessor() -> HFJSON {
        var specials: [Int] = []
        if addBos, let bos { specials.append(bos) }
        if addEos, let eos { specials.append(eos) }
        if byteLevel && specials.isEmpty {
            return .object([("type", .str("ByteLevel")), ("add_prefix_space", .bool(true)), ("trim_offsets", .bool(false)),
                            ("use_regex", .bool(true))])
        }
        func special(_ id: Int, _ typeId: Int) -> HFJSON {
            .object([("SpecialToken", .object([("id", content(id)), ("type_id", .int(typeId))]))])
        }
        func sequence(_ name: String, _ typeId: Int) -> HFJSON {
            .object([("Sequence", .object([("id", .str(name)), ("type_id", .int(typeId))]))])
        }
        func template(_ name: String, _ typeId: Int) -> [HFJSON] {
            var items: [HFJSON] = []
            if addBos, let bos { items.append(special(bos, typeId)) }
            items.append(sequence(name, typeId))
            if addEos, let eos { items.append(special(eos, typeId)) }
            return items
        }
        var specialMembers: [([UInt32], HFJSON)] = []
        for id in specials where !specialMembers.contains(where: { $0.0 == data.tokens[id].tokScalars }) {
            specialMembers.append((data.tokens[id].tokScalars,
                                   .object([("id", content(id)), ("ids", .array([.int(id)])), ("tokens", .array([content(id)]))])))
        }
        return .object([
            ("type", .str("TemplateProcessing")), ("single", .array(template("A", 0))),
            ("pair", .array(template("A", 0) + template("B", 1))), ("special_tokens", .members(specialMembers)),
        ])
    }

    // MARK: tokenizer_config.json, special_tokens_map.json

    var namedSpecials: [(String, Int)] {
        [("bos_token", bos), ("eos_token", eos), ("pad_token", pad), ("unk_token", unk)].compactMap { name, id in
            id.map { (name, $0) }
        }
    }

    func tokenizerConfigJSON(modelMaxLength: Int?) -> Data {
        var members: [(String, HFJSON)] = [("add_bos_token", .bool(addBos)), ("add_eos_token", .bool(addEos))]
        members += namedSpecials.map { ($0.0, content($0.1)) }
        if let t = data.chatTemplate { members.append(("chat_template", .str(t))) }
        members.append(("clean_up_tokenization_spaces", .bool(false)))
        if let m = modelMaxLength { members.append(("model_max_length", .int(m))) }
        members.append(("tokenizer_class", .str("PreTrainedTokenizerFast")))
        return HFJSON.object(members).serialized()
    }

    func specialTokensMapJSON() -> Data? {
        let named = namedSpecials
        guard !named.isEmpty else { return nil }
        return HFJSON.object(named.map { ($0.0, content($0.1)) }).serialized()
    }
}

// MARK: - Pipeline parts as tokenizer.json

extension HFJSON {
    init(_ n: TokNormalizer) {
        switch n {
        case .sequence(let list): self = .typed("Sequence", [("normalizers", .array(list.map(HFJSON.init)))])
        case .prepend(let s): self = .typed("Prepend", [("prepend", .string(s))])
        case .replace(let pattern, let content):
            self = .typed("Replace", [("pattern", .object([("String", .string(pattern))])), ("content", .string(content))])
        case .nfc: self = .typed("NFC", [])
        case .nfd: self = .typed("NFD", [])
        case .nfkc: self = .typed("NFKC", [])
        case .nfkd: self = .typed("NFKD", [])
        case .lowercase: self = .typed("Lowercase", [])
        case .strip(let left, let right): self = .typed("Strip", [("strip_left", .bool(left)), ("strip_right", .bool(right))])
        }
    }

    init(_ t: TokPreTokenizer) {
        switch t {
        case .sequence(let list): self = .typed("Sequence", [("pretokenizers", .array(list.map(HFJSON.init)))])
        case .byteLevel(let addPrefixSpace, let useRegex):
            self = .typed("ByteLevel", [("add_prefix_space", .bool(addPrefixSpace)), ("trim_offsets", .bool(true)),
                                        ("use_regex", .bool(useRegex))])
        case .digits(let individual): self = .typed("Digits", [("individual_digits", .bool(individual))])
        case .metaspace(let replacement, let scheme, let split):
            let s: String
            switch scheme {
            case .first: s = "first"
            case .always: s = "always"
            case .never: s = "never"
            }
            self = .typed("Metaspace", [("replacement", .string([replacement])), ("prepend_scheme", .str(s)), ("split", .bool(split))])
        case .split(let regex):
            let pattern: String
            switch regex {
            case .gpt2: pattern = SplitRegex.gpt2Pattern
            case .llama3(let maxDigits): pattern = maxDigits == 1 ? SplitRegex.qwen2Pattern : SplitRegex.llama3Pattern
            }
            self = .typed("Split", [("pattern", .object([("Regex", .str(pattern))])), ("behavior", .str("Isolated")),
                                    ("invert", .bool(false))])
        }
    }

    init(_ d: TokDecoder) {
        switch d {
        case .sequence(let list): self = .typed("Sequence", [("decoders", .array(list.map(HFJSON.init)))])
        case .byteLevel:
            self = .typed("ByteLevel", [("add_prefix_space", .bool(true)), ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])
        case .replace(let pattern, let content):
            self = .typed("Replace", [("pattern", .object([("String", .string(pattern))])), ("content", .string(content))])
        case .byteFallback: self = .typed("ByteFallback", [])
        case .fuse: self = .typed("Fuse", [])
        case .strip(let content, let start, let stop):
            self = .typed("Strip", [("content", .string([content])), ("start", .int(start)), ("stop", .int(stop))])
        case .metaspace(let replacement, let stripFirst):
            self = .typed("Metaspace", [("replacement", .string([replacement])), ("prepend_scheme", .str(stripFirst ? "always" : "never")),
                                        ("split", .bool(true))])
        case .bpeSuffix(let suffix): self = .typed("BPEDecoder", [("suffix", .string(suffix))])
        }
    }
}

// MARK: - JSON text

/// A JSON value whose strings and keys are exact scalar values, written in member order.
indirect enum HFJSON {
    case null
    case bool(Bool)
    case int(Int)
    case string([UInt32])
    case array([HFJSON])
    case members([([UInt32], HFJSON)])

    static func str(_ s: String) -> HFJSON { .string(s.tokScalars) }
    static func object(_ m: [(String, HFJSON)]) -> HFJSON { .members(m.map { ($0.0.tokScalars, $0.1) }) }
    static func typed(_ type: String, _ m: [(String, HFJSON)]) -> HFJSON { .object([("type", .str(type))] + m) }

    /// Pretty-printed (two-space indent; arrays of plain values on one line), UTF-8, final newline.
    func serialized() -> Data {
        var out: [UInt8] = []
        write(into: &out, indent: 0)
        out.append(0x0A)
        return Data(out)
    }

    private var isContainer: Bool {
        switch self {
        case .array, .members: return true
        default: return false
        }
    }

    private func write(into out: inout [UInt8], indent: Int) {
        func newline(_ n: Int) {
            out.append(0x0A)
            out.append(contentsOf: repeatElement(0x20, count: n))
        }
        switch self {
        case .null: out += Array("null".utf8)
        case .bool(let b): out += Array((b ? "true" : "false").utf8)
        case .int(let i): out += Array(String(i).utf8)
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            if items.contains(where: \.isContainer) {
                for (k, v) in items.enumerated() {
                    if k > 0 { out.append(UInt8(ascii: ",")) }
                    newline(indent + 2)
                    v.write(into: &out, indent: indent + 2)
                }
                if !items.isEmpty { newline(indent) }
            } else {
                for (k, v) in items.enumerated() {
                    if k > 0 { out += [UInt8(ascii: ","), 0x20] }
                    v.write(into: &out, indent: indent)
                }
            }
            out.append(UInt8(ascii: "]"))
        case .members(let members):
            out.append(UInt8(ascii: "{"))
            for (k, (key, v)) in members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 2)
                Self.writeString(key, into: &out)
                out += [UInt8(ascii: ":"), 0x20]
                v.write(into: &out, indent: indent + 2)
            }
            if !members.isEmpty { newline(indent) }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// A JSON string: `"` and `\` escaped, control characters as escapes, everything else as UTF-8.
    private static func writeString(_ s: [UInt32], into out: inout [UInt8]) {
        out.append(0x22)
        for c in s {
            switch c {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0..<0x20:
                out += Array(String(format: "\\u%04x", c).utf8)
            case 0xD800..<0xE000, 0x110000...:
                out += Array("\\ufffd".utf8)   // not a scalar value; cannot occur in a Swift String
            default:
                TokText.appendUTF8(c, to: &out)
            }
        }
        out.append(0x22)
    }
}
