import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// The training paths on Qwen2 (the family added as one file, Architectures/Qwen2.swift): LoRA on
/// every role equals its merge, and weights moved by MeZO export to a directory transformers
/// loads as Qwen2ForCausalLM with the logits ZOTune computes.
extension LoRATests {
    func testQwen2LoRAEqualsItsMerge() throws {
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7, 8], [3, 4, 11, 12]], padId: 0)
        for arch in ["qwen2", "qwen2_tied"] {
            let lm = try tinyModel(arch)
            let lora = try LoRA(model: lm, options: LoRAOptions(rank: 3, alpha: 6, targets: ["all"]))
            XCTAssertEqual(lora.adapters.count, 7 * lm.config.numLayers, arch)
            for (i, e) in lora.set.entries.enumerated() where e.name.contains("lora_B") {
                backend.fillNormal(e.tensor, seed: 4, tensorId: UInt32(i), stream: 0, scale: 0.2)
            }
            lm.hook = lora
            let adapted = backend.toHost(try lm.allLogits(batch))
            lm.hook = nil
            naiveMerge(lora, into: lm)
            let merged = backend.toHost(try lm.allLogits(batch))
            // As testOtherArchitectures: f32 forward vs double-merged weights, logits of magnitude ~5.
            XCTAssertLessThan(zip(adapted, merged).map { abs($0 - $1) }.max()!, 2e-5, arch)
        }
    }

    func testQwen2ExportLoadsInTransformersWithTheSameLogits() throws {
        guard let python = referencePython() else { throw XCTSkip("no reference Python with torch/transformers") }
        for arch in ["qwen2", "qwen2_tied"] {
            let path = modelFixtures.appendingPathComponent("models/\(arch)").path
            let file = try ModelFile.open(path)
            let lm = try file.load(on: backend)
            let mezo = MeZO(set: TrainableSet.full(lm), options: MeZOOptions(eps: 1e-2), backend: backend)
            let batch = randomTokenBatch(batch: 2, length: 5, vocab: lm.config.vocabSize)
            for t in 0..<2 { _ = try mezo.step(t, runSeed: 3, lr: 1e-2) { try languageModelLoss(lm, batch) } }
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("zotune-qwen2-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            try HFExport.write(lm, file: file, to: dir)

            let ids: [Int32] = [5, 77, 300, 12, 9]
            let ours = backend.toHost(try lm.lastLogits(.leftPadded([ids], padId: 0)))
            let (status, data) = try runReferenceScript(python, "check_export.py", [dir.path] + ids.map(String.init))
            XCTAssertEqual(status, 0, "\(arch): transformers could not load the export")
            let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            XCTAssertEqual(json["architecture"] as? String, "Qwen2ForCausalLM")
            let theirs = (json["logits"] as! [NSNumber]).map(\.floatValue)
            XCTAssertEqual(theirs.count, ours.count)
            // Both f32 on the same weights: the forward-parity tolerance (ForwardParityTests).
            XCTAssertLessThanOrEqual(zip(ours, theirs).map { abs($0 - $1) }.max()!, 1e-4, arch)
            let base = try ModelFile.open(path).load(on: backend)
            XCTAssertNotEqual(backend.toHost(try base.lastLogits(.leftPadded([ids], padId: 0))), ours, "\(arch): the update reached the file")
        }
    }
}
