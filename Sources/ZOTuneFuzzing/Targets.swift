import Foundation
import ZOTuneKernels
import ZOTuneModels
import ZOTuneTraining

/// One parser of untrusted input, driven the way the engine drives it: the input is written to a
/// file named as the engine expects, then read, and everything the reader hands out is used
/// (tensors read and dequantized, examples rendered, text tokenized). A thrown error is a correct
/// answer to a bad file; a trap, a crash or a hang is a bug.
public struct FuzzTarget: Sendable {
    public let name: String
    /// Seed files, relative to the package root.
    public let seeds: [String]
    /// The input's file name (readers choose their format by name or extension).
    public let fileName: String
    /// Applied to every mutated input before it is read (e.g. re-sealing a checksum so that
    /// mutations reach the parser behind it).
    let prepare: @Sendable (inout [UInt8]) -> Void
    let body: @Sendable (URL) throws -> Void

    init(_ name: String, seeds: [String], fileName: String, prepare: @escaping @Sendable (inout [UInt8]) -> Void = { _ in },
         _ body: @escaping @Sendable (URL) throws -> Void) {
        (self.name, self.seeds, self.fileName, self.prepare, self.body) = (name, seeds, fileName, prepare, body)
    }

    /// Reads `bytes` as this target's file inside `dir`. Returns whether the reader accepted it.
    @discardableResult
    public func run(_ bytes: [UInt8], in dir: URL) -> Bool { explain(bytes, in: dir) == nil }

    /// The reader's error for `bytes`, or nil when it accepted them.
    public func explain(_ bytes: [UInt8], in dir: URL) -> String? {
        var input = bytes
        prepare(&input)
        let url = dir.appendingPathComponent(fileName)
        FileManager.default.createFile(atPath: url.path, contents: Data(input))
        do {
            try body(url)
            return nil
        } catch {
            return "\(error)"
        }
    }
}

/// Reads every tensor of at most 2^20 elements as f32 (dequantizing GGUF blocks on the way).
private func readTensors(_ reader: any CheckpointReader) throws {
    var buffer = [Float](repeating: 0, count: 1 << 20)
    for name in reader.tensors.keys.sorted() {
        guard let t = reader.tensors[name] else { continue }
        let count = t.shape.reduce(1) { $0.multipliedReportingOverflow(by: max($1, 0)).overflow ? Int.max : $0 * max($1, 0) }
        guard count <= buffer.count else { continue }
        try buffer.withUnsafeMutableBytes { raw in
            try reader.read(name, into: UnsafeMutableRawBufferPointer(rebasing: raw[0..<(count * 4)]), as: .f32)
        }
    }
}

private let sampleText = "Hello world, it's 2026! Ünïcödé — 東京 🙂 \n\t  tabs and  spaces 12345"

/// Uses a tokenizer the way training does: encode with and without special tokens, decode.
private func exercise(_ tok: any Tokenizer) {
    let ids = tok.encode(sampleText, addSpecialTokens: true)
    _ = tok.decode(ids, skipSpecialTokens: false)
    _ = tok.encode(sampleText, addSpecialTokens: false)
}

/// The task files of the built-in readers: one example rendered per record.
private func readTask(_ task: TaskName, _ url: URL, _ split: SourceSplit = .train) throws {
    for ex in try readTaskFile(task, at: url, split: split).examples { _ = ex.candidates.count }
}

/// A trajectory ends with a checksum of everything before it; re-seal it so mutations of the
/// header and records are parsed instead of being rejected by the checksum.
@Sendable private func resealTrajectory(_ bytes: inout [UInt8]) {
    guard bytes.count >= 8 else { return }
    let n = bytes.count - 8
    let h = bytes.withUnsafeBytes { zt_hash64($0.baseAddress, UInt64(n), 0x2A70) }
    withUnsafeBytes(of: h.littleEndian) { for i in 0..<8 { bytes[n + i] = $0[i] } }
}

private let modelFixtures = "Tests/ModelTests/Fixtures"
private let taskFixtures = "Tests/TrainingTests/Fixtures/tasks"

/// Every fuzz target, by name.
public let fuzzTargets: [FuzzTarget] = [
    FuzzTarget("safetensors", seeds: ["llama", "gpt2", "opt"].map { "\(modelFixtures)/models/\($0)/model.safetensors" }
                                     + ["\(modelFixtures)/models/dtypes/dtypes.safetensors"],
               fileName: "model.safetensors") { url in
        try readTensors(try SafetensorsFile(path: url.path))
    },
    FuzzTarget("safetensors-index", seeds: ["\(modelFixtures)/models/opt_sharded/model.safetensors.index.json"],
               fileName: "model.safetensors.index.json") { url in
        // The index sits next to the real shards and config (linked in by the harness).
        try readTensors(try HFCheckpoint(path: url.deletingLastPathComponent().path))
    },
    FuzzTarget("config", seeds: ["llama", "llama3", "gpt2", "opt", "opt_postln"].map { "\(modelFixtures)/models/\($0)/config.json" },
               fileName: "config.json") { url in
        _ = try ModelConfig.fromHuggingFace(configJSON: url)
    },
    FuzzTarget("tokenizer", seeds: ["gpt2", "llama", "llama3", "llama_metaspace", "opt", "roberta", "smollm"].map { "\(modelFixtures)/tokenizers/\($0).json" },
               fileName: "tokenizer.json") { url in
        exercise(try BPETokenizer(tokenizerJSON: url))
    },
    FuzzTarget("gguf", seeds: ["\(modelFixtures)/gguf/tiny_llama.gguf", "\(modelFixtures)/gguf/tiny_gpt2.gguf"], fileName: "model.gguf") { url in
        let file = try GGUFFile(path: url.path)
        try readTensors(file)
        // The tiny fixtures carry partial vocabularies: build the tokenizer when the data allow.
        if let data = try? file.tokenizerData(), let tok = try? BPETokenizer(gguf: data, file: url.path) { exercise(tok) }
    },
    FuzzTarget("task-tsv", seeds: ["\(taskFixtures)/SST-2/train.tsv", "\(taskFixtures)/SST-2/dev.tsv"], fileName: "train.tsv") { url in
        try readTask(.sst2, url)
    },
    FuzzTarget("task-jsonl", seeds: ["RTE", "CB", "COPA", "WiC", "WSC", "MultiRC", "BoolQ"].map { "\(taskFixtures)/\($0)/val.jsonl" }
                                    + ["\(taskFixtures)/WinoGrande/dev.jsonl", "\(taskFixtures)/ReCoRD/FewGLUE/train.jsonl"],
               fileName: "train.jsonl") { url in
        // Every SuperGLUE-style reader on the same bytes: each must answer, none may crash.
        var accepted = false
        for task in [TaskName.rte, .cb, .copa, .wic, .wsc, .multirc, .boolq, .record, .winogrande] {
            if (try? readTask(task, url)) != nil { accepted = true }
        }
        if !accepted { throw CocoaError(.fileReadCorruptFile) }
    },
    FuzzTarget("task-squad", seeds: ["\(taskFixtures)/SQuAD/dev-v1.1.json"], fileName: "dev-v1.1.json") { url in
        try readTask(.squad, url, .validation)
    },
    FuzzTarget("task-drop", seeds: ["\(taskFixtures)/DROP/drop_dataset_dev.json", "\(taskFixtures)/DROP/drop_dataset_train.json"],
               fileName: "drop_dataset_dev.json") { url in
        // The dev and train files read different answer fields.
        if (try? readTask(.drop, url, .validation)) == nil { try readTask(.drop, url, .train) }
    },
    FuzzTarget("task-movies", seeds: ["\(taskFixtures)/movies/movieReviewSnippets_GroundTruth.txt"],
               fileName: "movieReviewSnippets_GroundTruth.txt") { url in
        try readTask(.movies, url)
    },
    FuzzTarget("custom-jsonl", seeds: ["Tests/Fuzz/corpus/custom/reviews.jsonl", "Tests/Fuzz/corpus/custom/choice.jsonl",
                                       "Tests/Fuzz/corpus/custom/qa.jsonl"], fileName: "data.jsonl") { url in
        try readCustom(url)
    },
    FuzzTarget("custom-csv", seeds: ["Tests/Fuzz/corpus/custom/reviews.csv", "Tests/Fuzz/corpus/custom/choice.csv"], fileName: "data.csv") { url in
        try readCustom(url)
    },
    FuzzTarget("trajectory", seeds: ["Tests/Fuzz/corpus/trajectory/tiny-mezo.zot"], fileName: "trajectory.zot", prepare: resealTrajectory) { url in
        let t = try TrajectoryFile.read(url)
        _ = t.records.count
    },
]

/// A custom file read as classification (labels 0/1), then as multiple choice or generation.
private func readCustom(_ url: URL) throws {
    var spec = CustomTaskSpec()
    spec.labels = [LabelVerbalizer(label: "0", verbalizer: " terrible"), LabelVerbalizer(label: "1", verbalizer: " great")]
    spec.file = url
    if (try? loadCustomTask(spec, dataSeed: 1, counts: SplitCounts(train: 5, dev: 2, test: 3))) != nil { return }
    spec.labels = nil
    _ = try loadCustomTask(spec, dataSeed: 1, counts: SplitCounts(train: 5, dev: 2, test: 3))
}

public func fuzzTarget(named name: String) -> FuzzTarget? { fuzzTargets.first { $0.name == name } }
