import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// The training paths on Qwen2 (the family added as one file, Architectures/Qwen2.swift): LoRA on
/// every role equals its merge (the export that transformers reloads: ExportTests).
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
}
