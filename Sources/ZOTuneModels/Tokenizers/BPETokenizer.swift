// BPE tokenizers as Hugging Face `tokenizers` runs them: added tokens split out first, then
// normalizer → pre-tokenizer → BPE model per piece, then the post-processor's special tokens.
// Built from a tokenizer.json or from the `tokenizer.ggml.*` data of a GGUF file.
import Foundation

/// A byte-level (GPT-2, OPT, SmolLM2, Llama-3) or SentencePiece-style (Llama-2) BPE tokenizer.
/// Immutable after init apart from an internal, locked word cache; safe to share across threads.
public final class BPETokenizer: Tokenizer {
    private let model: BPEModel
    private let added: AddedVocabulary
    private let normalizer: TokNormalizer?
    private let preTokenizer: TokPreTokenizer?
    private let postProcessor: TokPostProcessor?
    private let decoder: TokDecoder?

    public let vocabSize: Int
    public let bosId: Int32?
    public let eosId: Int32?
    public let padId: Int32?
    public let unknownId: Int32?
    /// Whether `encode(_:addSpecialTokens: true)` puts `bosId` first.
    public let addsBos: Bool
    /// The chat template (Jinja) from the GGUF or tokenizer_config.json, if any.
    public let chatTemplate: String?

    private init(model: BPEModel, added: AddedVocabulary, normalizer: TokNormalizer?, preTokenizer: TokPreTokenizer?,
                 postProcessor: TokPostProcessor?, decoder: TokDecoder?, bos: Int32?, eos: Int32?, pad: Int32?,
                 unk: Int32?, chatTemplate: String?) {
        self.model = model
        self.added = added
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.postProcessor = postProcessor
        self.decoder = decoder
        let maxAdded = added.tokens.map(\.id).max() ?? -1
        self.vocabSize = max(model.idToToken.count, Int(maxAdded) + 1)
        self.bosId = bos
        self.eosId = eos
        self.padId = pad
        self.unknownId = unk
        self.addsBos = bos.map { b in postProcessor?.surrounding.before.first == b } ?? false
        self.chatTemplate = chatTemplate
    }

    // MARK: Tokenizer

    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        let input = TextPiece(scalars: text.tokScalars, atOrigin: true)
        var segments: [AddedVocabulary.Segment] = []
        added.split(input, normalizedTokens: false, into: &segments)
        for segment in segments {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(var piece):
                normalizer?.apply(&piece.scalars)
                if added.hasNormalized {
                    var inner: [AddedVocabulary.Segment] = []
                    added.split(piece, normalizedTokens: true, into: &inner)
                    for s in inner {
                        switch s {
                        case .token(let id): ids.append(id)
                        case .text(let p): encodePiece(p, into: &ids)
                        }
                    }
                } else {
                    encodePiece(piece, into: &ids)
                }
            }
        }
        if addSpecialTokens, let postProcessor { ids = postProcessor.process(ids) }
        return ids
    }

    private func encodePiece(_ piece: TextPiece, into ids: inout [Int32]) {
        guard !piece.scalars.isEmpty else { return }
        guard let preTokenizer else {
            model.tokenize(piece.scalars, into: &ids)
            return
        }
        for word in preTokenizer.apply([piece]) { model.tokenize(word.scalars, into: &ids) }
    }

    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        var tokens: [[UInt32]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let t = decodeSpelling(id) else { continue }
            if skipSpecialTokens && !added.specialContents.isEmpty && added.specialContents.contains(ScalarKey(t)) {
                continue
            }
            tokens.append(t)
        }
        guard let decoder else {
            return tokens.map { TokText.string($0) }.joined(separator: " ")
        }
        return TokText.string(decoder.decode(tokens).joined())
    }

    /// What decode starts from: an added token's (normalized) form, else the vocabulary entry.
    private func decodeSpelling(_ id: Int32) -> [UInt32]? {
        if let i = added.byId[id] { return added.tokens[i].normalized ? added.tokens[i].matchForm : added.tokens[i].content }
        return model.token(id)
    }

    public func token(_ id: Int32) -> String? {
        if let i = added.byId[id] { return TokText.string(added.tokens[i].content) }
        return model.token(id).map { TokText.string($0) }
    }

    public func id(_ token: String) -> Int32? {
        let key = ScalarKey(token)
        return added.byContent[key] ?? model.vocab[key]
    }

    /// Whether `id` is a special token (skipped by `decode(_:skipSpecialTokens: true)`).
    public func isSpecial(_ id: Int32) -> Bool {
        guard let t = decodeSpelling(id) else { return false }
        return added.specialContents.contains(ScalarKey(t))
    }
}

// MARK: - tokenizer.json

extension BPETokenizer {
    /// Loads a Hugging Face tokenizer.json (BPE model). Special-token names (bos/eos/pad/unk) are
    /// taken from a tokenizer_config.json next to it when present, else from the post-processor
    /// template and common spellings. Errors name the file and the JSON field.
    public convenience init(tokenizerJSON url: URL) throws {
        let file = url.path
        let bytes: [UInt8]
        do {
            bytes = [UInt8](try Data(contentsOf: url))
        } catch {
            throw ModelError(file: file, field: "file", "cannot read: \(error.localizedDescription)")
        }
        let root = try TokJSON.parse(bytes, file: file)
        guard root.members != nil else { throw ModelError(file: file, field: "(root)", "expected a JSON object") }
        let p = TokenizerJSONParser(file: file)

        guard let modelJSON = root["model"], !modelJSON.isNull else {
            throw ModelError(file: file, field: "model", "missing: a tokenizer.json needs a model")
        }
        let (model, unkToken) = try p.model(modelJSON)
        let normalizer = try root["normalizer"].flatMap { $0.isNull ? nil : try p.normalizer($0, "normalizer") }
        let added = try p.addedTokens(root["added_tokens"], normalizer: normalizer)
        let lookup: (String) -> Int32? = { added.byContent[ScalarKey($0)] ?? model.vocab[ScalarKey($0)] }
        let preTokenizer = try root["pre_tokenizer"].flatMap { $0.isNull ? nil : try p.preTokenizer($0, "pre_tokenizer") }
        let post = try root["post_processor"].flatMap { $0.isNull ? nil : try p.postProcessor($0, "post_processor", lookup) }
        let decoder = try root["decoder"].flatMap { $0.isNull ? nil : try p.decoder($0, "decoder") }

        // Special-token names: tokenizer_config.json beside the file, if any.
        let configURL = url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        var config: TokJSON?
        if let data = try? Data(contentsOf: configURL) {
            config = try TokJSON.parse([UInt8](data), file: configURL.path)
        }
        func configured(_ key: String) -> Int32? {
            guard let v = config?[key] else { return nil }
            let name = v.string ?? v["content"]?.string
            return name.flatMap(lookup)
        }
        func firstPresent(_ names: [String]) -> Int32? {
            for n in names { if let id = lookup(n) { return id } }
            return nil
        }
        let around: (before: [Int32], after: [Int32]) = post?.surrounding ?? ([], [])
        let bos = configured("bos_token") ?? around.before.first
            ?? firstPresent(["<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>", "<|endoftext|>"])
        let eos = configured("eos_token") ?? around.after.last
            ?? firstPresent(["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|im_end|>", "<|eot_id|>"])
        let pad = configured("pad_token") ?? firstPresent(["<pad>", "<|pad|>", "[PAD]"])
        let unk = configured("unk_token") ?? unkToken.flatMap(lookup)
        self.init(model: model, added: added, normalizer: normalizer, preTokenizer: preTokenizer, postProcessor: post,
                  decoder: decoder, bos: bos, eos: eos, pad: pad, unk: unk,
                  chatTemplate: config?["chat_template"]?.string)
    }
}

/// Reads the parts of a tokenizer.json; `path` arguments are the JSON field for messages.
private struct TokenizerJSONParser {
    let file: String

    func fail(_ field: String, _ message: String) -> ModelError { ModelError(file: file, field: field, message) }

    func type(_ j: TokJSON, _ path: String) throws -> String {
        guard let t = j["type"]?.string else { throw fail(path + ".type", "missing or not a string") }
        return t
    }

    func string(_ j: TokJSON, _ key: String, _ path: String) throws -> String {
        guard let s = j[key]?.string else {
            throw fail("\(path).\(key)", j[key] == nil ? "missing" : "expected a string, got \(j[key]!.summary)")
        }
        return s
    }

    func char(_ j: TokJSON, _ key: String, _ path: String) throws -> UInt32 {
        let s = try string(j, key, path).tokScalars
        guard s.count == 1 else { throw fail("\(path).\(key)", "expected one character") }
        return s[0]
    }

    func bool(_ j: TokJSON, _ key: String, _ path: String, default d: Bool) throws -> Bool {
        guard let v = j[key], !v.isNull else { return d }
        guard let b = v.bool else { throw fail("\(path).\(key)", "expected true or false, got \(v.summary)") }
        return b
    }

    func list(_ j: TokJSON, _ key: String, _ path: String) throws -> [TokJSON] {
        guard let a = j[key]?.array else { throw fail("\(path).\(key)", "missing or not an array") }
        return a
    }

    /// `{"String": s}` patterns only (a literal); regex patterns are refused.
    func literalPattern(_ j: TokJSON, _ path: String) throws -> [UInt32] {
        guard let pat = j["pattern"] else { throw fail(path + ".pattern", "missing") }
        if let s = pat["String"]?.string { return s.tokScalars }
        if let r = pat["Regex"]?.string { throw fail(path + ".pattern", "regex pattern \"\(r)\" is not supported") }
        throw fail(path + ".pattern", "expected {\"String\": ...}")
    }

    // MARK: Model

    func model(_ j: TokJSON) throws -> (BPEModel, String?) {
        let kind = j["type"]?.string ?? (j["merges"] != nil ? "BPE" : "")
        guard kind == "BPE" else { throw fail("model.type", "unsupported model \"\(kind)\" (only BPE)") }
        guard let vocabMembers = j["vocab"]?.members else { throw fail("model.vocab", "missing or not an object") }
        var vocab: [ScalarKey: Int32] = [:]
        vocab.reserveCapacity(vocabMembers.count)
        // Ids index dense tables: an id far beyond the vocabulary would allocate (and scan) a table
        // of that size. Real vocabularies are dense or nearly so.
        let idLimit = min(Int(Int32.max), max(4 * vocabMembers.count, vocabMembers.count + (1 << 20)))
        for (token, idJSON) in vocabMembers {
            guard let id = idJSON.int, id >= 0, id <= Int(Int32.max) else {
                throw fail("model.vocab[\"\(token)\"]", "expected a non-negative integer id, got \(idJSON.summary)")
            }
            guard id < idLimit else {
                throw fail("model.vocab[\"\(token)\"]", "id \(id) is far beyond the vocabulary's \(vocabMembers.count) entries (ids must be below \(idLimit))")
            }
            vocab[ScalarKey(token)] = Int32(id)
        }
        guard let mergeList = j["merges"]?.array else { throw fail("model.merges", "missing or not an array") }
        var merges: [([UInt32], [UInt32])] = []
        merges.reserveCapacity(mergeList.count)
        for (i, m) in mergeList.enumerated() {
            if let s = m.string {
                // "left right": exactly one space (tokens never contain one in these vocabularies).
                let parts = s.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw fail("model.merges[\(i)]", "expected \"left right\", got \(m.summary)")
                }
                merges.append((parts[0].map(\.value), parts[1].map(\.value)))
            } else if let a = m.array, a.count == 2, let l = a[0].string, let r = a[1].string {
                merges.append((l.tokScalars, r.tokScalars))
            } else {
                throw fail("model.merges[\(i)]", "expected \"left right\" or [left, right], got \(m.summary)")
            }
        }
        let unkToken = j["unk_token"]?.string
        let prefix = j["continuing_subword_prefix"]?.string?.tokScalars
        let suffix = j["end_of_word_suffix"]?.string?.tokScalars
        if let d = j["dropout"], !d.isNull, (d.int ?? 1) != 0 {
            throw fail("model.dropout", "BPE dropout is not supported (inference tokenization is deterministic)")
        }
        do {
            let model = try BPEModel(
                vocab: vocab, merges: merges, unkId: unkToken.flatMap { vocab[ScalarKey($0)] },
                fuseUnk: try bool(j, "fuse_unk", "model", default: false),
                byteFallback: try bool(j, "byte_fallback", "model", default: false),
                ignoreMerges: try bool(j, "ignore_merges", "model", default: false),
                continuingSubwordPrefix: prefix, endOfWordSuffix: suffix)
            return (model, unkToken)
        } catch let e as BPEModel.MergeError {
            throw fail("model.merges[\(e.index)]", "\"\(TokText.string(e.missing))\" is not in model.vocab")
        }
    }

    // MARK: Added tokens

    func addedTokens(_ j: TokJSON?, normalizer: TokNormalizer?) throws -> AddedVocabulary {
        guard let j, !j.isNull else { return AddedVocabulary([]) }
        guard let items = j.array else { throw fail("added_tokens", "expected an array") }
        var tokens: [AddedToken] = []
        for (i, item) in items.enumerated() {
            let path = "added_tokens[\(i)]"
            guard let id = item["id"]?.int, id >= 0, id <= Int(Int32.max) else { throw fail(path + ".id", "missing or not an id") }
            // Above any real vocabulary (the largest have ~10^6 entries); ids index dense tables.
            guard id < 1 << 22 else { throw fail(path + ".id", "id \(id) is beyond any vocabulary (ids must be below 4194304)") }
            let content = try string(item, "content", path).tokScalars
            guard !content.isEmpty else { continue }
            let special = try bool(item, "special", path, default: false)
            let normalized = try bool(item, "normalized", path, default: !special)
            var form = content
            if normalized { normalizer?.apply(&form) }
            tokens.append(AddedToken(
                id: Int32(id), content: content, special: special,
                singleWord: try bool(item, "single_word", path, default: false),
                lstrip: try bool(item, "lstrip", path, default: false),
                rstrip: try bool(item, "rstrip", path, default: false),
                normalized: normalized, matchForm: form))
        }
        return AddedVocabulary(tokens)
    }

    // MARK: Normalizer

    func normalizer(_ j: TokJSON, _ path: String) throws -> TokNormalizer {
        switch try type(j, path) {
        case "Sequence":
            return .sequence(try list(j, "normalizers", path).enumerated().map {
                try normalizer($1, "\(path).normalizers[\($0)]")
            })
        case "Prepend": return .prepend(try string(j, "prepend", path).tokScalars)
        case "Replace": return .replace(pattern: try literalPattern(j, path), content: try string(j, "content", path).tokScalars)
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Lowercase": return .lowercase
        case "Strip":
            return .strip(left: try bool(j, "strip_left", path, default: true), right: try bool(j, "strip_right", path, default: true))
        case let t: throw fail(path + ".type", "unsupported normalizer \"\(t)\"")
        }
    }

    // MARK: Pre-tokenizer

    func preTokenizer(_ j: TokJSON, _ path: String) throws -> TokPreTokenizer {
        switch try type(j, path) {
        case "Sequence":
            return .sequence(try list(j, "pretokenizers", path).enumerated().map {
                try preTokenizer($1, "\(path).pretokenizers[\($0)]")
            })
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try bool(j, "add_prefix_space", path, default: true),
                              useRegex: try bool(j, "use_regex", path, default: true))
        case "Digits":
            return .digits(individual: try bool(j, "individual_digits", path, default: false))
        case "Metaspace":
            return .metaspace(replacement: try char(j, "replacement", path), scheme: try prependScheme(j, path),
                              split: try bool(j, "split", path, default: true))
        case "Split":
            guard let pattern = j["pattern"]?["Regex"]?.string else {
                throw fail(path + ".pattern", "only {\"Regex\": ...} split patterns are supported")
            }
            guard let regex = SplitRegex(pattern: pattern) else {
                throw fail(path + ".pattern", "unsupported split regex (known: GPT-2, Llama-3, Qwen2): \(pattern)")
            }
            let behavior = j["behavior"]?.string ?? "Isolated"
            guard behavior == "Isolated" else { throw fail(path + ".behavior", "only \"Isolated\" is supported") }
            guard try !bool(j, "invert", path, default: false) else { throw fail(path + ".invert", "inverted splits are not supported") }
            return .split(regex)
        case let t: throw fail(path + ".type", "unsupported pre-tokenizer \"\(t)\"")
        }
    }

    func prependScheme(_ j: TokJSON, _ path: String) throws -> PrependScheme {
        if let s = j["prepend_scheme"]?.string {
            switch s {
            case "first": return .first
            case "always": return .always
            case "never": return .never
            default: throw fail(path + ".prepend_scheme", "expected first, always or never")
            }
        }
        // Older files: add_prefix_space instead.
        return try bool(j, "add_prefix_space", path, default: true) ? .always : .never
    }

    // MARK: Decoder

    func decoder(_ j: TokJSON, _ path: String) throws -> TokDecoder {
        switch try type(j, path) {
        case "Sequence":
            return .sequence(try list(j, "decoders", path).enumerated().map { try decoder($1, "\(path).decoders[\($0)]") })
        case "ByteLevel": return .byteLevel
        case "Replace": return .replace(pattern: try literalPattern(j, path), content: try string(j, "content", path).tokScalars)
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Strip":
            guard let start = j["start"]?.int, let stop = j["stop"]?.int, start >= 0, stop >= 0 else {
                throw fail(path + ".start", "start and stop must be non-negative integers")
            }
            return .strip(content: try char(j, "content", path), start: start, stop: stop)
        case "Metaspace":
            return .metaspace(replacement: try char(j, "replacement", path), stripFirst: try prependScheme(j, path) != .never)
        case "BPEDecoder":
            return .bpeSuffix((j["suffix"]?.string ?? "</w>").tokScalars)
        case let t: throw fail(path + ".type", "unsupported decoder \"\(t)\"")
        }
    }

    // MARK: Post-processor

    func postProcessor(_ j: TokJSON, _ path: String, _ lookup: (String) -> Int32?) throws -> TokPostProcessor {
        switch try type(j, path) {
        case "Sequence":
            return .sequence(try list(j, "processors", path).enumerated().map {
                try postProcessor($1, "\(path).processors[\($0)]", lookup)
            })
        case "ByteLevel":
            return .passThrough
        case "TemplateProcessing":
            let specials = j["special_tokens"]
            var items: [TemplateItem] = []
            for (i, piece) in try list(j, "single", path).enumerated() {
                let field = "\(path).single[\(i)]"
                if piece["Sequence"] != nil {
                    items.append(.sequence)
                } else if let name = piece["SpecialToken"]?["id"]?.string {
                    if let ids = specials?[name]?["ids"]?.array {
                        items.append(.special(try ids.map { v -> Int32 in
                            guard let id = v.int, id >= 0, id <= Int(Int32.max) else {
                                throw fail("\(path).special_tokens[\"\(name)\"].ids", "expected ids")
                            }
                            return Int32(id)
                        }))
                    } else if let id = lookup(name) {
                        items.append(.special([id]))
                    } else {
                        throw fail(field, "special token \"\(name)\" is neither in special_tokens nor in the vocabulary")
                    }
                } else {
                    throw fail(field, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}")
                }
            }
            return .template(items)
        case "RobertaProcessing", "BertProcessing":
            func pair(_ key: String) throws -> Int32 {
                guard let a = j[key]?.array, a.count == 2, let id = a[1].int, id >= 0, id <= Int(Int32.max) else {
                    throw fail("\(path).\(key)", "expected [token, id]")
                }
                return Int32(id)
            }
            return .template([.special([try pair("cls")]), .sequence, .special([try pair("sep")])])
        case let t: throw fail(path + ".type", "unsupported post-processor \"\(t)\"")
        }
    }
}

// MARK: - GGUF

extension BPETokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`), with llama.cpp's behaviour:
    /// - "gpt2": byte-level BPE; the pre-tokenizer follows `pre` ("smollm" and other StarCoder-style
    ///   vocabularies split digits individually first; "llama-bpe"/"llama3" and "qwen2" use their
    ///   regexes; anything else the GPT-2 regex).
    /// - "llama": SentencePiece BPE: "▁" before each text fragment and for spaces, merges by token
    ///   score (highest first, leftmost on ties) when the file lists none, `<0xNN>` byte fallback.
    /// Control (3) and unknown (2) tokens become special added tokens, user-defined (4) plain ones.
    /// `file` names the source in errors.
    public convenience init(gguf data: GGUFTokenizerData, file: String = "GGUF") throws {
        let p = "tokenizer.ggml."
        let tokens = data.tokens.map(\.tokScalars)
        guard !tokens.isEmpty else { throw ModelError(file: file, field: p + "tokens", "empty vocabulary") }
        guard tokens.count <= Int(Int32.max) else { throw ModelError(file: file, field: p + "tokens", "too many tokens") }
        if !data.tokenTypes.isEmpty && data.tokenTypes.count != tokens.count {
            throw ModelError(file: file, field: p + "token_type", "\(data.tokenTypes.count) entries for \(tokens.count) tokens")
        }
        func checkId(_ id: Int?, _ key: String) throws -> Int32? {
            guard let id else { return nil }
            guard id >= 0 && id < tokens.count else {
                throw ModelError(file: file, field: p + key, "token id \(id) is outside the \(tokens.count)-token vocabulary")
            }
            return Int32(id)
        }
        let bos = try checkId(data.bosId, "bos_token_id"), eos = try checkId(data.eosId, "eos_token_id")
        let pad = try checkId(data.padId, "padding_token_id")
        var unk = try checkId(data.unknownId, "unknown_token_id")
        let types = data.tokenTypes

        let byteLevel: Bool
        switch data.model {
        case "gpt2": byteLevel = true
        case "llama": byteLevel = false
        default: throw ModelError(file: file, field: p + "model", "unsupported tokenizer model \"\(data.model)\" (gpt2 or llama)")
        }

        // Vocabulary spellings as the model sees them. A byte-level vocabulary writes every token
        // in the byte alphabet; respell any that is not (as transformers does).
        var spellings = tokens
        if byteLevel {
            for (i, t) in tokens.enumerated() where t.contains(where: { ByteLevelTable.byte(for: $0) == nil }) {
                spellings[i] = byteLevelChars(t[...])
            }
        }
        var vocab: [ScalarKey: Int32] = [:]
        vocab.reserveCapacity(tokens.count)
        for (i, t) in spellings.enumerated() { vocab[ScalarKey(t)] = Int32(i) }   // a repeated spelling: last id wins

        var addedTokens: [AddedToken] = []
        for (i, t) in types.enumerated() where (t == 2 || t == 3 || t == 4) && !tokens[i].isEmpty {
            addedTokens.append(AddedToken(id: Int32(i), content: tokens[i], special: t != 4, singleWord: false,
                                          lstrip: false, rstrip: false, normalized: false, matchForm: tokens[i]))
        }
        if unk == nil, let u = types.firstIndex(of: 2) { unk = Int32(u) }

        var merges: [([UInt32], [UInt32])] = []
        var ranks: [UInt32]?
        if !data.merges.isEmpty {
            merges.reserveCapacity(data.merges.count)
            for (i, m) in data.merges.enumerated() {
                let parts = m.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw ModelError(file: file, field: "\(p)merges[\(i)]", "expected \"left right\", got \"\(m)\"") }
                merges.append((parts[0].map(\.value), parts[1].map(\.value)))
            }
        } else if !byteLevel {
            guard data.scores.count == tokens.count else {
                throw ModelError(file: file, field: p + "scores", "needed to derive merges: \(data.scores.count) scores for \(tokens.count) tokens")
            }
            (merges, ranks) = Self.mergesFromScores(spellings: spellings, vocab: vocab, scores: data.scores)
        } else {
            throw ModelError(file: file, field: p + "merges", "missing: a gpt2 vocabulary needs merges")
        }

        let model: BPEModel
        do {
            let hasBytes = !byteLevel && vocab[ScalarKey("<0x00>")] != nil
            model = try BPEModel(vocab: vocab, spellings: spellings, merges: merges, rankOverride: ranks, unkId: byteLevel ? nil : unk,
                                 fuseUnk: !byteLevel, byteFallback: hasBytes, ignoreMerges: false,
                                 continuingSubwordPrefix: nil, endOfWordSuffix: nil)
        } catch {
            let e = error
            throw ModelError(file: file, field: "\(p)merges[\(e.index)]", "\"\(TokText.string(e.missing))\" is not in \(p)tokens")
        }

        let normalizer: TokNormalizer?, preTokenizer: TokPreTokenizer?, decoder: TokDecoder
        if byteLevel {
            normalizer = nil
            switch data.pre {
            case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva":
                preTokenizer = .sequence([.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)])
            case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe":
                preTokenizer = .sequence([.split(.llama3(maxDigits: 3)), .byteLevel(addPrefixSpace: false, useRegex: false)])
            case "qwen2", "deepseek-r1-qwen":
                preTokenizer = .sequence([.split(.llama3(maxDigits: 1)), .byteLevel(addPrefixSpace: false, useRegex: false)])
            default:
                preTokenizer = .byteLevel(addPrefixSpace: false, useRegex: true)
            }
            decoder = .byteLevel
        } else {
            normalizer = GGUFTokenizerPipeline.sentencePieceNormalizer(data)
            preTokenizer = nil
            decoder = GGUFTokenizerPipeline.sentencePieceDecoder(data)
        }
        var template: [TemplateItem] = []
        if let bos, data.addBos ?? !byteLevel { template.append(.special([bos])) }
        template.append(.sequence)
        if let eos, data.addEos ?? false { template.append(.special([eos])) }

        self.init(model: model, added: AddedVocabulary(addedTokens), normalizer: normalizer, preTokenizer: preTokenizer,
                  postProcessor: .template(template), decoder: decoder, bos: bos, eos: eos, pad: pad, unk: unk,
                  chatTemplate: data.chatTemplate)
    }

    /// SentencePiece merges: every split of a token into two tokens, ranked by the token's score
    /// (higher first). Equal scores share a rank so the leftmost pair wins, as in llama.cpp.
    private static func mergesFromScores(spellings: [[UInt32]], vocab: [ScalarKey: Int32], scores: [Float])
        -> ([([UInt32], [UInt32])], [UInt32]) {
        var found: [(left: [UInt32], right: [UInt32], score: Float)] = []
        for (i, t) in spellings.enumerated() where t.count >= 2 {
            guard vocab[ScalarKey(t)] == Int32(i) else { continue }   // a shadowed duplicate
            for k in 1..<t.count {
                let l = Array(t[..<k]), r = Array(t[k...])
                if vocab[ScalarKey(l)] != nil && vocab[ScalarKey(r)] != nil { found.append((l, r, scores[i])) }
            }
        }
        found.sort { $0.score > $1.score }
        var ranks: [UInt32] = []
        ranks.reserveCapacity(found.count)
        var rank: UInt32 = 0
        for (i, f) in found.enumerated() {
            if i > 0 && f.score != found[i - 1].score { rank += 1 }
            ranks.append(rank)
        }
        return (found.map { ($0.left, $0.right) }, ranks)
    }
}
