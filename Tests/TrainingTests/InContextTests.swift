// In-context learning prompts against a fixture built by MeZO's rules (Fixtures/icl/
// make_icl_fixture.py), the per-example draw, and MeZO's left truncation that keeps the BOS.
import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

final class InContextTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    struct Case: Decodable {
        let task: String
        let file: String
        let demonstrations: [Int]
        let evaluated: Int
        let generation: Bool
        let final: [String]
    }

    func testPromptsEqualMeZOsForFixedDraws() throws {
        let dir = trainingFixtures.appendingPathComponent("icl")
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: dir.appendingPathComponent("prompts.json")))
        XCTAssertEqual(cases.count, 5)
        for c in cases {
            let task = try XCTUnwrap(TaskName(caseInsensitive: c.task))
            let examples = try readTaskFile(task, at: trainingFixtures.appendingPathComponent("tasks/\(c.file)"),
                                            split: task == .squad ? .validation : .train).examples
            let demos = try c.demonstrations.map { try XCTUnwrap(InContext.demonstration(examples[$0])) }
            let eval = examples[c.evaluated]
            let prompted = InContext.prompt(eval, demonstrations: demos)
            if c.generation {
                XCTAssertEqual(prompted.prompt, c.final[0], c.task)
                XCTAssertEqual(prompted.answers, eval.answers)
            } else {
                XCTAssertEqual(prompted.candidates.map { $0.prefix + $0.continuation }, c.final, c.task)
                // The scored option is the zero-shot one: only the prefix grows.
                XCTAssertEqual(prompted.candidates.map(\.continuation), eval.candidates.map(\.continuation))
                XCTAssertEqual(prompted.label, eval.label)
            }
            if c.demonstrations.isEmpty { XCTAssertEqual(prompted, eval, "K = 0 is zero-shot") }
        }
    }

    func testEveryExampleDrawsItsOwnDemonstrationsDeterministically() throws {
        let pool = tinySplits().train, evals = tinySplits().test
        XCTAssertEqual(try InContext.apply(evals, pool: pool, k: 0, dataSeed: 1, stream: "tiny/icl"), evals)
        let a = try InContext.apply(evals, pool: pool, k: 3, dataSeed: 1, stream: "tiny/icl")
        XCTAssertEqual(a, try InContext.apply(evals, pool: pool, k: 3, dataSeed: 1, stream: "tiny/icl"))
        XCTAssertNotEqual(a, try InContext.apply(evals, pool: pool, k: 3, dataSeed: 2, stream: "tiny/icl"))
        let demos = pool.compactMap(InContext.demonstration)
        var draws = Set<[Int]>()
        for (i, (ex, orig)) in zip(a, evals).enumerated() {
            let picked = InContext.draw(poolCount: pool.count, k: 3, index: i, dataSeed: 1, stream: "tiny/icl")
            XCTAssertEqual(Set(picked).count, 3)
            draws.insert(picked)
            XCTAssertEqual(ex.candidates[0].prefix, picked.map { demos[$0] }.joined(separator: "\n\n") + "\n\n" + orig.candidates[0].prefix)
        }
        XCTAssertGreaterThan(draws.count, 1, "each example has its own draw")
        XCTAssertThrowsError(try InContext.apply(evals, pool: pool, k: 9, dataSeed: 1, stream: "tiny/icl")) {
            XCTAssertTrue("\($0)".contains("9 demonstrations"))
        }
    }

    /// MeZO: `encoding[0:1] + encoding[1:][-(max_length-1):]` with a BOS-adding tokenizer, else
    /// the last max_length tokens; the option tokens always survive.
    func testTruncationDropsTheStartAndKeepsTheBOS() throws {
        let llama = try BPETokenizer(tokenizerJSON: modelFixtures.appendingPathComponent("tokenizers/llama.json"))
        let text = (0..<40).map { "word\($0)" }.joined(separator: " ")
        for (tok, bos) in [(llama as any Tokenizer, true), (try tokenizer() as any Tokenizer, false)] {
            let scorer = Scorer(model: try tinyModel(), tokenizer: tok, maxLength: 16)
            let ids = tok.encode(text, addSpecialTokens: true)
            XCTAssertGreaterThan(ids.count, 16)
            XCTAssertEqual(ids.first == tok.bosId, bos)
            let expected = bos ? [ids[0]] + ids.suffix(15) : Array(ids.suffix(16))
            XCTAssertEqual(scorer.truncateLeft(ids, to: 16), expected)
            let cand = Candidate(prefix: text, continuation: " great")
            let s = scorer.sequence(cand)
            XCTAssertEqual(s.ids.count, 16)
            XCTAssertEqual(Array(s.ids.suffix(s.scored)), tok.encode(" great", addSpecialTokens: false))
            XCTAssertEqual(s.ids.first == tok.bosId, bos)
            let short = TaskExample(id: "s", candidates: [Candidate(prefix: "word1", continuation: " great")], label: 0)
            XCTAssertEqual(scorer.truncatedCount([short, TaskExample(id: "l", candidates: [cand], label: 0)]), 1)
        }
    }
}
