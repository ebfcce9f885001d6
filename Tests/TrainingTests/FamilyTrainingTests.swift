import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// Every training path on the families added on the family design (Architectures/): the code
/// outside Architectures/ speaks of roles, so LoRA, Zoop, DiZO, prefix/prompt tuning and block
/// partitions work on Qwen2/3 (q/k norms), Mistral and Qwen2 with windows, Phi-3's fused
/// qkv_proj/gate_up_proj and LongRoPE without a line of family code.
let trainingFamilies = ["qwen2", "qwen2_tied", "qwen2_swa", "qwen3", "qwen3_tied", "mistral_swa", "phi3", "phi3_longrope",
                        "gemma", "gemma2", "gemma3", "olmo2", "gptneox", "gptneox_seq"]

extension LoRATests {
    /// LoRA on every role equals its naive double merge, and LoRA.merge agrees with that merge.
    func testEveryFamilyLoRAEqualsItsMerge() throws {
        for arch in trainingFamilies {
            let lm = try tinyModel(arch)
            try assertLoRAEqualsMerge(arch, targets: ["all"], expectedAdapters: lm.plan.layers[0].linears.count * lm.config.numLayers)
        }
    }

    /// Roles select fused layers: q (or k, v) selects Phi-3's qkv_proj, gate or up its
    /// gate_up_proj; the checkpoint's own names work too.
    func testRolesSelectFusedLayers() throws {
        let lm = try tinyModel("phi3")
        for (targets, module) in [(["q"], "self_attn.qkv_proj"), (["qkv_proj"], "self_attn.qkv_proj"), (["up"], "mlp.gate_up_proj")] {
            let lora = try LoRA(model: lm, options: LoRAOptions(rank: 2, alpha: 4, targets: targets))
            XCTAssertEqual(lora.adapters.keys.sorted(), (0..<2).map { "model.layers.\($0).\(module).weight" }, "\(targets)")
        }
    }

    /// A Zoop step moves exactly its noisy layers' weights, each by η; DiZO projects the k and v
    /// roles (Phi-3: the fused qkv); MeZO, prefix and prompt tuning step with finite losses.
    func testEveryFamilyZoopDiZOPrefixPrompt() throws {
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7, 8], [3, 4, 11, 12]], padId: 0)
        for arch in trainingFamilies {
            let fresh = try tinyModel(arch)
            let before = weights(fresh)
            let zopts = ZoopOptions(eps: 1e-2, layers: ["o", "down"])
            let z = try Zoop(model: fresh, set: try zopts.trainableSet(fresh), options: zopts)
            _ = try z.step(StepContext(step: 0, runSeed: 1, lr: 0.05, loss: { try languageModelLoss(fresh, batch) },
                                       scoreSamples: { try sequenceScore(fresh, batch) }))
            let trained = Set(z.set.entries.map(\.name))
            // o and down of each layer, with their biases where the family has them (Qwen3's attention_bias).
            let noisy = fresh.plan.layers.flatMap(\.linears).filter { [.o, .down].contains($0.role) }
            XCTAssertEqual(trained, Set(noisy.flatMap { [$0.weight] + [$0.bias].compactMap { $0 } }), arch)
            for (name, w) in weights(fresh) {
                let d = zip(w, before[name]!).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
                XCTAssertEqual(d, trained.contains(name) ? 0.05 : 0, accuracy: 1e-5, "\(arch) \(name)")
            }

            let lm = try tinyModel(arch)
            let dizo = try DiZO(set: .full(lm), options: DiZOOptions(), backend: backend)
            let fusedQKV = lm.plan.layers[0].isFused
            XCTAssertEqual(dizo.projected.count, (fusedQKV ? 1 : 2) * lm.config.numLayers, arch)

            for config in [PEFTConfig.prefix(PrefixOptions(tokens: 3)), .prompt(PromptOptions(tokens: 4))] {
                let model = try tinyModel(arch)
                let adapter = try config.make(model: model)
                model.hook = adapter
                let mezo = MeZO(set: adapter.set, options: MeZOOptions(eps: 1e-2), backend: backend)
                let r = try mezo.step(StepContext(step: 0, runSeed: 2, lr: 1e-2, loss: { try languageModelLoss(model, batch) }))
                XCTAssertTrue(r.loss.isFinite && r.projectedGrad.isFinite && r.projectedGrad != 0, "\(arch) \(config.name)")
            }
        }
    }
}

extension BlockwiseTests {
    /// attn-mlp blocks on every family: each tensor in one block; q/k norms and fused qkv go with
    /// attention, the fused gate/up with the MLP.
    func testPartitionOnEveryFamily() throws {
        for arch in trainingFamilies {
            let names = TrainableSet.full(try tinyModel(arch)).entries.map(\.name)
            let blocks = try BlockPartition.blocks(names, level: .attnMLP)
            XCTAssertEqual(blocks.flatMap(\.entries).sorted(), Array(names.indices), arch)
            let attn = try XCTUnwrap(blocks.first { $0.name == "layer 1 attn" }).entries.map { names[$0] }
            let mlp = try XCTUnwrap(blocks.first { $0.name == "layer 1 mlp" }).entries.map { names[$0] }
            // The norm names of each role differ by family: ask the roles, then check a name or two.
            for name in attn { XCTAssertTrue(Architecture.role(of: name)?.role.isAttention ?? false, "\(arch): \(name) in attn") }
            for name in mlp { XCTAssertFalse(Architecture.role(of: name)?.role.isAttention ?? true, "\(arch): \(name) in mlp") }
            XCTAssertTrue(attn.contains { $0.contains("_proj") || $0.contains("query_key_value") }, "\(arch): \(attn)")
            XCTAssertTrue(mlp.contains { $0.contains("mlp.") }, "\(arch): \(mlp)")
            if arch.hasPrefix("qwen3") { XCTAssertTrue(attn.contains { $0.hasSuffix("q_norm.weight") }, arch) }
        }
    }
}
