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

    /// Llama and every family of the family design, as its transformers class: windows (the
    /// 5-token check crosses the 3-key ones), q/k norms, fused projections, partial rotary and
    /// LongRoPE reach config.json and model.safetensors.
    func testEveryFamilyExportLoadsInTransformersWithTheSameLogits() throws {
        try assertMovedExportsLoadInTransformers([
            ("llama", "LlamaForCausalLM"), ("qwen2", "Qwen2ForCausalLM"), ("qwen2_tied", "Qwen2ForCausalLM"),
            ("qwen2_swa", "Qwen2ForCausalLM"), ("qwen3", "Qwen3ForCausalLM"), ("qwen3_tied", "Qwen3ForCausalLM"),
            ("mistral_swa", "MistralForCausalLM"), ("phi3", "Phi3ForCausalLM"), ("phi3_longrope", "Phi3ForCausalLM"),
            ("gemma", "GemmaForCausalLM"), ("gemma2", "Gemma2ForCausalLM"), ("gemma3", "Gemma3ForCausalLM"), ("olmo2", "Olmo2ForCausalLM"),
            ("gptneox", "GPTNeoXForCausalLM"), ("gptneox_seq", "GPTNeoXForCausalLM")])
    }

    /// Each fixture model moved by two MeZO steps, exported, loaded by transformers (one Python
    /// process for all) as its architecture: the same last logits, and not the base model's.
    func assertMovedExportsLoadInTransformers(_ models: [(name: String, architecture: String)]) throws {
        guard let python = referencePython() else { throw XCTSkip("no reference Python with torch/transformers") }
        let backend = KernelBackend.cpu()
        let fixtures = Self.root.appendingPathComponent("Tests/ModelTests/Fixtures")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-export-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let ids: [Int32] = [5, 77, 300, 12, 9]
        var jobs: [[String: Any]] = [], ours: [[Float]] = []
        for (name, _) in models {
            let file = try ModelFile.open(fixtures.appendingPathComponent("models/\(name)").path)
            let lm = try file.load(on: backend)
            // Move the weights off the checkpoint: two MeZO steps.
            let mezo = MeZO(set: TrainableSet.full(lm), options: MeZOOptions(eps: 1e-2), backend: backend)
            let batch = randomTokenBatch(batch: 2, length: 5, vocab: lm.config.vocabSize)
            for t in 0..<2 { _ = try mezo.step(StepContext(step: t, runSeed: 3, lr: 1e-2, loss: { try languageModelLoss(lm, batch) })) }
            let dir = root.appendingPathComponent(name)
            try HFExport.write(lm, file: file, to: dir)
            let logits = backend.toHost(try lm.lastLogits(.leftPadded([ids], padId: 0)))
            // And the export is not the base model: the update reached the file.
            let base = try ModelFile.open(fixtures.appendingPathComponent("models/\(name)").path).load(on: backend)
            XCTAssertNotEqual(backend.toHost(try base.lastLogits(.leftPadded([ids], padId: 0))), logits, name)
            jobs.append(["dir": dir.path, "ids": ids])
            ours.append(logits)
        }
        let (status, data) = try runReferenceScript(python, "check_export.py", [], input: try JSONSerialization.data(withJSONObject: jobs))
        XCTAssertEqual(status, 0, "transformers could not load the exports")
        let results = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(results.count, models.count)
        for (i, r) in results.enumerated() {
            let name = models[i].name
            XCTAssertEqual(r["architecture"] as? String, models[i].architecture, name)
            let theirs = (r["logits"] as! [NSNumber]).map(\.floatValue)
            XCTAssertEqual(theirs.count, ours[i].count, name)
            // Both f32 on the same weights: the forward-parity tolerance and its derivation
            // (ForwardParityTests; logits ≤ 5.5 here, measured 1.4e-6–3.5e-6 across OpenBLAS and
            // ATen kernel sets, docs/testing.md).
            let err = zip(ours[i], theirs).map { abs($0 - $1) }.max() ?? .infinity
            print("ExportTests \(name): max |Δlogit| \(err) on max |logit| \(theirs.map(abs).max() ?? 0)")
            XCTAssertLessThanOrEqual(err, 1e-4, name)
        }
    }
}
