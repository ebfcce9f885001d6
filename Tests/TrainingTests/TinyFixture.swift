import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// The tiny random Llama of the model fixtures, a small trained BPE tokenizer and an SST-2-shaped
/// task: what the training tests run on.
protocol TinyFixture {
    var backend: KernelBackend { get }
}

let modelFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../ModelTests/Fixtures").standardized
let trainingFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

extension TinyFixture {
    func tinyModel(_ name: String = "llama") throws -> CausalLM {
        let ckpt = try HFCheckpoint(path: modelFixtures.appendingPathComponent("models/\(name)").path)
        return try CausalLM(config: ckpt.config, reader: ckpt, backend: backend)
    }

    func tokenizer() throws -> BPETokenizer {
        try BPETokenizer(tokenizerJSON: modelFixtures.appendingPathComponent("tokenizers/smollm.json"))
    }

    /// A small sentiment task in the SST-2 template's shape.
    func tinySplits() -> TaskSplits {
        let words = ["the film was a joy", "dull and far too long", "a warm and clever story", "nothing works here",
                     "great acting all round", "I wanted my money back", "a small marvel", "flat characters, flat jokes",
                     "funny and moving", "a tedious mess", "worth every minute", "the worst of the year"]
        let examples = words.enumerated().map { i, s in
            TaskExample(id: "\(i)", candidates: [Candidate(prefix: s + " It was", continuation: " terrible"),
                                                 Candidate(prefix: s + " It was", continuation: " great")], label: (i + 1) % 2)
        }
        return TaskSplits(task: "tiny", train: Array(examples[0..<8]), dev: Array(examples[8..<12]), test: Array(examples[8..<12]), notes: [])
    }

    func weights(_ lm: CausalLM) -> [String: [Float]] {
        var out: [String: [Float]] = [:]
        for e in TrainableSet.full(lm).entries { out[e.name] = backend.toHost(e.tensor) }
        return out
    }

    func tempDir() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }
}

/// The Python reference (torch, transformers, peft): $ZOTUNE_REF_PYTHON, else .venv-ref/ in the
/// package (what Tests/setup.sh installs); nil when neither is executable (the tests using it skip).
func referencePython(environment: [String: String] = ProcessInfo.processInfo.environment,
                     packageRoot: URL = ExportTests.root) -> String? {
    let env = environment["ZOTUNE_REF_PYTHON"].flatMap { $0.isEmpty ? nil : $0 }
    let candidates = [env, packageRoot.appendingPathComponent(".venv-ref/bin/python").path].compactMap { $0 }
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Runs a fixture script of Tests/TrainingTests/Fixtures with the reference Python: its exit status
/// and standard output (standard error discarded).
func runReferenceScript(_ python: String, _ script: String, _ arguments: [String], input: Data? = nil) throws -> (status: Int32, output: Data) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: python)
    p.arguments = [trainingFixtures.appendingPathComponent(script).path] + arguments
    let out = Pipe(), stdin = Pipe()
    p.standardOutput = out
    // stderr to a file (a pipe left unread could fill and stall the script), shown on failure.
    let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-ref-\(UUID().uuidString).err")
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)   // FileHandle(forWritingTo:) throws if it fails
    let err = try FileHandle(forWritingTo: errURL)
    defer { try? err.close(); try? FileManager.default.removeItem(at: errURL) }
    p.standardError = err
    if input != nil { p.standardInput = stdin }
    try p.run()
    if let input {
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    if p.terminationStatus != 0, let text = try? String(contentsOf: errURL, encoding: .utf8) {
        print("\(script) failed (status \(p.terminationStatus)); its stderr ends:\n" + text.split(separator: "\n").suffix(15).joined(separator: "\n"))
    }
    return (p.terminationStatus, data)
}
