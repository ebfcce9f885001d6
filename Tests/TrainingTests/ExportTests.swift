import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
import ZOTuneTraining

/// Tuned weights exported in Hugging Face format load in transformers and give the logits ZOTune
/// computes for them (Python reference: Fixtures/check_export.py). Skipped when no Python with
/// torch and transformers is found ($ZOTUNE_REF_PYTHON, else .venv-ref/ in the package).
final class ExportTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    func testExportLoadsInTransformersWithTheSameLogits() throws {
        try assertMovedExportLoadsInTransformers("llama", as: "LlamaForCausalLM")
    }

    /// Qwen2, untied and tied (Architectures/Qwen2.swift): the same check, as Qwen2ForCausalLM.
    func testQwen2ExportLoadsInTransformersWithTheSameLogits() throws {
        for arch in ["qwen2", "qwen2_tied"] { try assertMovedExportLoadsInTransformers(arch, as: "Qwen2ForCausalLM") }
    }

    /// The fixture model `name` moved by two MeZO steps, exported, loaded by transformers as
    /// `architecture`: the same last logits, and not the base model's.
    func assertMovedExportLoadsInTransformers(_ name: String, as architecture: String) throws {
        guard let python = referencePython() else { throw XCTSkip("no reference Python with torch/transformers") }
        let backend = KernelBackend.cpu()
        let fixtures = Self.root.appendingPathComponent("Tests/ModelTests/Fixtures")
        let file = try ModelFile.open(fixtures.appendingPathComponent("models/\(name)").path)
        let lm = try file.load(on: backend)
        // Move the weights off the checkpoint: two MeZO steps.
        let mezo = MeZO(set: TrainableSet.full(lm), options: MeZOOptions(eps: 1e-2), backend: backend)
        let batch = randomTokenBatch(batch: 2, length: 5, vocab: lm.config.vocabSize)
        for t in 0..<2 { _ = try mezo.step(t, runSeed: 3, lr: 1e-2) { try languageModelLoss(lm, batch) } }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-export-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try HFExport.write(lm, file: file, to: dir)

        let ids: [Int32] = [5, 77, 300, 12, 9]
        let ours = backend.toHost(try lm.lastLogits(.leftPadded([ids], padId: 0)))
        let (status, data) = try runReferenceScript(python, "check_export.py", [dir.path] + ids.map(String.init))
        XCTAssertEqual(status, 0, "\(name): transformers could not load the export")
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(json["architecture"] as? String, architecture)
        let theirs = (json["logits"] as! [NSNumber]).map(\.floatValue)
        XCTAssertEqual(theirs.count, ours.count)
        // Both f32 on the same weights: the forward-parity tolerance and its derivation
        // (ForwardParityTests; logits ≤ 4 here, measured 1.6e-6–1.7e-6 across OpenBLAS and ATen
        // kernel sets, docs/testing.md).
        print("ExportTests \(name): max |Δlogit| \(zip(ours, theirs).map { abs($0 - $1) }.max()!) on max |logit| \(theirs.map(abs).max()!)")
        XCTAssertLessThanOrEqual(zip(ours, theirs).map { abs($0 - $1) }.max()!, 1e-4, name)
        // And the export is not the base model: the update reached the file.
        let base = try ModelFile.open(fixtures.appendingPathComponent("models/\(name)").path).load(on: backend)
        XCTAssertNotEqual(backend.toHost(try base.lastLogits(.leftPadded([ids], padId: 0))), ours, name)
    }
}
