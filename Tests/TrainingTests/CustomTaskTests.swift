// Custom task files against the built-in loaders (the outside reference: each custom shape must
// give the examples the built-in task gives for the same records), and bad custom data.
import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

private let taskFixtures = trainingFixtures.appendingPathComponent("tasks")

final class CustomTaskTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-custom-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func write(_ text: String, _ dir: URL, _ name: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    func jsonLine(_ o: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
    }

    /// RFC 4180 quoting, as Python's csv module writes with QUOTE_ALL.
    func csvField(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

    func sst2Spec() throws -> CustomTaskSpec {
        var spec = CustomTaskSpec()
        spec.template = try PromptTemplate("{text} It was")
        spec.labels = try LabelVerbalizer.parseList("0= terrible,1= great", source: "--labels")
        return spec
    }

    func assertSameExamples(_ a: [TaskExample], _ b: [TaskExample], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.candidates, y.candidates, file: file, line: line)
            XCTAssertEqual(x.label, y.label, file: file, line: line)
            XCTAssertEqual(x.prompt, y.prompt, file: file, line: line)
            XCTAssertEqual(x.answers, y.answers, file: file, line: line)
        }
    }

    /// SST-2 written as classification JSONL, CSV (quoted, commas and quotes inside) and as the
    /// original TSV with a template over its own column: the built-in loader's prompts and
    /// candidates, in order; the same draw under the same name and seed; the same accuracy.
    func testSST2AsClassificationFilesEqualsTheBuiltInTask() throws {
        let dir = try scratch()
        let builtIn = try readTaskFile(.sst2, at: taskFixtures.appendingPathComponent("SST-2/train.tsv"), split: .train).examples
        let table = try readTSV(taskFixtures.appendingPathComponent("SST-2/train.tsv"))
        let rows = table.rows.map { (text: $0.fields[0], label: Int($0.fields[1])!) }
        let jsonl = try rows.map { try jsonLine(["text": $0.text, "label": $0.label]) }.joined(separator: "\n") + "\n"
        let csv = "text,label\r\n" + rows.map { csvField($0.text) + ",\($0.label)" }.joined(separator: "\r\n") + "\r\n"
        let spec = try sst2Spec()
        for url in [try write(jsonl, dir, "sst2.jsonl"), try write(csv, dir, "sst2.csv")] {
            assertSameExamples(try spec.read(url).examples.map { $0.render() }, builtIn)
        }
        var tsvSpec = try sst2Spec()
        tsvSpec.template = try PromptTemplate("{sentence} It was")
        let fromTSV = try tsvSpec.read(taskFixtures.appendingPathComponent("SST-2/train.tsv")).examples.map { $0.render() }
        assertSameExamples(fromTSV, builtIn)
        XCTAssertEqual(fromTSV.map(\.id), builtIn.map(\.id))

        // The draw: a custom task named sst2 with the one file == the built-in sst2 with only train.tsv.
        let builtInDir = dir.appendingPathComponent("data/SST-2")
        try FileManager.default.createDirectory(at: builtInDir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: taskFixtures.appendingPathComponent("SST-2/train.tsv"), to: builtInDir.appendingPathComponent("train.tsv"))
        let reference = try loadTask("sst2", dataDir: dir.appendingPathComponent("data"), dataSeed: 7, trainCount: 5, devCount: 3, testCount: 4)
        var named = spec
        named.name = "sst2"
        named.file = dir.appendingPathComponent("sst2.jsonl")
        let custom = try loadCustomTask(named, dataSeed: 7, counts: SplitCounts(train: 5, dev: 3, test: 4))
        assertSameExamples(custom.train, reference.train)
        assertSameExamples(custom.dev, reference.dev)
        assertSameExamples(custom.test, reference.test)

        // Accuracy and every candidate score: the same on the tiny model.
        let scorer = Scorer(model: try tinyModel(), tokenizer: try tokenizer())
        let a = try Evaluator(scorer: scorer).evaluate(custom.train + custom.test)
        let b = try Evaluator(scorer: scorer).evaluate(reference.train + reference.test)
        XCTAssertEqual(a.accuracy, b.accuracy)
        XCTAssertEqual(try scorer.candidateScores(custom.test), try scorer.candidateScores(reference.test))
    }

    /// COPA as multiple choice (prompt + choices + answer) in JSONL and in CSV with choice1/choice2
    /// columns; SQuAD as generation (prompt + completion, several gold answers).
    func testMultipleChoiceAndGenerationEqualTheBuiltInTasks() throws {
        let dir = try scratch()
        let copa = try readTaskFile(.copa, at: taskFixtures.appendingPathComponent("COPA/train.jsonl"), split: .train).examples
        let mc = try copa.enumerated().map { i, ex in
            try jsonLine(["prompt": ex.candidates[0].prefix, "choices": ex.candidates.map { stripWhitespace($0.continuation) },
                          "answer": i % 2 == 0 ? ex.label! as Any : stripWhitespace(ex.candidates[ex.label!].continuation)])
        }.joined(separator: "\n")
        let csv = "prompt,choice1,choice2,answer\n" + copa.map { ex in
            ([ex.candidates[0].prefix] + ex.candidates.map { stripWhitespace($0.continuation) }).map(csvField).joined(separator: ",") + ",\(ex.label!)"
        }.joined(separator: "\n")
        for url in [try write(mc, dir, "copa.jsonl"), try write(csv, dir, "copa.csv")] {
            let read = try CustomTaskSpec().read(url).examples.map { $0.render() }
            assertSameExamples(read, copa)
        }

        let squad = try readTaskFile(.squad, at: taskFixtures.appendingPathComponent("SQuAD/dev-v1.1.json"), split: .validation).examples
        let gen = try squad.map { try jsonLine(["prompt": $0.prompt!, "completion": $0.answers]) }.joined(separator: "\n")
        let read = try CustomTaskSpec().read(try write(gen, dir, "squad.jsonl")).examples.map { $0.render() }
        assertSameExamples(read, squad)
        XCTAssertEqual(read.first?.generationTarget, squad.first?.generationTarget)
    }

    /// A JSON task file: template with a newline, labels as ordered pairs, files relative to it;
    /// separate train and test files (dev and test disjoint from the test file).
    func testJSONTaskFileAndSeparateFiles() throws {
        let dir = try scratch()
        let rows = (0..<30).map { i in (premise: "Premise \(i).", hypothesis: "Claim \(i)", label: ["yes", "no", "maybe"][i % 3]) }
        let lines = try rows.map { try jsonLine(["premise": $0.premise, "hypothesis": $0.hypothesis, "label": $0.label]) }
        _ = try write(lines[0..<20].joined(separator: "\n"), dir, "train.jsonl")
        _ = try write(lines[20...].joined(separator: "\n"), dir, "test.jsonl")
        let spec = try write(#"{"name": "nli", "template": "{premise}\nIs \"{hypothesis}\" true?", "labels": [["yes", " Yes"], ["no", " No"], ["maybe", " Maybe"]], "train": "train.jsonl", "test": "test.jsonl"}"#, dir, "task.json")
        let loaded = try CustomTaskSpec.load(spec)
        XCTAssertEqual(loaded.labels?.map(\.label), ["yes", "no", "maybe"])
        let splits = try loadCustomTask(loaded, dataSeed: 3, counts: SplitCounts(train: 8, dev: 4, test: 5))
        XCTAssertEqual(splits.task, "nli")
        XCTAssertEqual([splits.train.count, splits.dev.count, splits.test.count], [8, 4, 5])
        XCTAssertTrue(splits.train.allSatisfy { $0.id.hasPrefix("train.jsonl:") })
        XCTAssertTrue((splits.dev + splits.test).allSatisfy { $0.id.hasPrefix("test.jsonl:") })
        XCTAssertTrue(Set(splits.dev.map(\.id)).isDisjoint(with: splits.test.map(\.id)))
        let first = splits.train[0]
        let n = Int(first.id.split(separator: ":")[1])! - 1
        XCTAssertEqual(first.candidates, MeZOTemplates.options(encoded: "Premise \(n).\nIs \"Claim \(n)\" true?", suffixes: [" Yes", " No", " Maybe"]))
        XCTAssertEqual(first.label, n % 3)

        // Three files: dev from the dev file, test from the test file.
        _ = try write(lines[10..<20].joined(separator: "\n"), dir, "dev.jsonl")
        var three = loaded
        three.dev = dir.appendingPathComponent("dev.jsonl")
        let s3 = try loadCustomTask(three, dataSeed: 3, counts: SplitCounts(train: 8, dev: 4, test: 5))
        XCTAssertTrue(s3.dev.allSatisfy { $0.id.hasPrefix("dev.jsonl:") })
        XCTAssertTrue(s3.test.allSatisfy { $0.id.hasPrefix("test.jsonl:") })

        let bad = try write(#"{"template": "{text}", "lables": "a= x,b= y"}"#, dir, "bad.json")
        XCTAssertThrowsError(try CustomTaskSpec.load(bad)) { XCTAssertTrue("\($0)".contains("lables") && "\($0)".contains("unknown key"), "\($0)") }
    }

    /// Each bad input: the error names the file and the line (and the field where there is one).
    func testBadCustomDataNamesFileLineAndField() throws {
        let dir = try scratch()
        let spec = try sst2Spec()
        func expect(_ name: String, _ content: [UInt8], _ spec: CustomTaskSpec, _ parts: [String], line: UInt = #line) throws {
            let url = dir.appendingPathComponent(name)
            try Data(content).write(to: url)
            XCTAssertThrowsError(try spec.read(url), line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(url.path), "no file in: \(text)", line: line)
                for p in parts { XCTAssertTrue(text.contains(p), "no \"\(p)\" in: \(text)", line: line) }
            }
        }
        func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
        try expect("missing.jsonl", bytes("{\"text\": \"fine\", \"label\": 1}\n{\"label\": 0}\n"), spec, ["line 2", "\"text\"", "missing"])
        try expect("unknown.jsonl", bytes("{\"text\": \"a\", \"label\": 1}\n\n{\"text\": \"b\", \"label\": 2}\n"), spec, ["line 3", "\"label\"", "\"2\" is not in the label map"])
        try expect("empty.jsonl", [], spec, ["empty file"])
        try expect("empty.csv", bytes("text,label\n"), spec, ["empty file"])
        try expect("latin1.jsonl", bytes("{\"text\": \"ok\", \"label\": 1}\n") + [0x7B, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3A, 0x22, 0x63, 0x61, 0x66, 0xE9, 0x22, 0x7D, 0x0A],
                   spec, ["line 2", "invalid UTF-8"])
        try expect("unclosed.csv", bytes("text,label\n\"fine\",1\n\"never closed,0\n"), spec, ["line 3", "not closed"])
        try expect("fields.csv", bytes("text,label\n\"a, b\",1\nc,0,extra\n"), spec, ["line 3", "expected 2"])
        try expect("column.csv", bytes("sentence,label\nfine,1\n"), spec, ["line 2", "column \"text\"", "missing column"])
        try expect("data.txt", bytes("fine\n"), spec, ["unknown data file type"])
        try expect("nolabels.jsonl", bytes("{\"text\": \"a\", \"label\": 1}\n"), CustomTaskSpec(), ["line 1", "--labels"])
        try expect("answer.jsonl", bytes("{\"prompt\": \"p\", \"choices\": [\"a\", \"b\"], \"answer\": 2}\n"), CustomTaskSpec(), ["line 1", "\"answer\"", "outside"])
        try expect("choices.jsonl", bytes("{\"prompt\": \"p\", \"choices\": [\"a\", 3], \"answer\": 0}\n"), CustomTaskSpec(), ["line 1", "choices[1]"])
        try expect("shape.jsonl", bytes("{\"question\": \"p\"}\n"), CustomTaskSpec(), ["line 1", "shape"])
        var placeholder = spec
        placeholder.template = try PromptTemplate("{review} It was")
        try expect("field.jsonl", bytes("{\"text\": \"a\", \"label\": 1}\n"), placeholder, ["line 1", "\"review\"", "missing"])

        XCTAssertThrowsError(try PromptTemplate("{text It was")) { XCTAssertTrue("\($0)".contains("unclosed")) }
        XCTAssertThrowsError(try PromptTemplate("It was")) { XCTAssertTrue("\($0)".contains("no {field}")) }
        XCTAssertEqual(try PromptTemplate("{{x}} {a}").fields, ["a"])
        XCTAssertThrowsError(try LabelVerbalizer.parseList("0= bad", source: "--labels")) { XCTAssertTrue("\($0)".contains("at least two")) }
        XCTAssertThrowsError(try LabelVerbalizer.parseList("0= a,0= b", source: "--labels")) { XCTAssertTrue("\($0)".contains("twice")) }
        XCTAssertEqual(try LabelVerbalizer.parseList("pos= great, neg= terrible", source: "x"),
                       [LabelVerbalizer(label: "pos", verbalizer: " great"), LabelVerbalizer(label: "neg", verbalizer: " terrible")])
    }

    /// CSV by RFC 4180: quoted commas, doubled quotes, a newline inside a field (rows numbered by
    /// their first line), CRLF and a byte-order mark.
    func testCSVReader() throws {
        let text = "\u{FEFF}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",plain\r\n\r\nlast,\"\"\r\n"
        let t = try readCSV(Array(text.utf8), file: "t.csv")
        XCTAssertEqual(t.columns, ["a", "b"])
        XCTAssertEqual(t.rows.map(\.line), [2, 3, 6])
        XCTAssertEqual(t.rows.map(\.fields), [["x, y", "say \"hi\""], ["two\nlines", "plain"], ["last", ""]])
        XCTAssertThrowsError(try readCSV(Array("a\n\"x\"y\n".utf8), file: "t.csv")) { XCTAssertTrue("\($0)".contains("line 2")) }
    }
}
