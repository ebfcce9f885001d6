import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// LoRA through the forward hook (ZO-FAMILY.md §5.1): the adapted forward equals the forward of
/// the merged weights W + (α/r)·B·A, computed here naively in double on the host; at
/// initialisation (B = 0) it is the base model bit for bit; A's bound and the GQA shapes.
final class LoRATests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()

    /// W ← W + (α/r)·B·A in double on the host (GPT-2's Conv1D weights are stored (in, out)).
    func naiveMerge(_ lora: LoRA, into lm: CausalLM) {
        let conv1D = lm.config.architecture == .gpt2, r = lora.options.rank
        for (name, ad) in lora.adapters {
            let w = lm.weights[name]
            var wv = backend.toHost(w)
            let a = backend.toHost(ad.a), b = backend.toHost(ad.b)
            let (out, inDim) = (ad.b.shape[0], ad.a.shape[1])
            for o in 0..<out {
                for c in 0..<inDim {
                    var s = 0.0
                    for k in 0..<r { s += Double(b[o * r + k]) * Double(a[k * inDim + c]) }
                    let at = conv1D ? c * out + o : o * inDim + c
                    wv[at] = Float(Double(wv[at]) + Double(lora.options.scaling) * s)
                }
            }
            wv.withUnsafeBytes { backend.copy(w, fromHost: $0) }
        }
    }

    /// LoRA on `targets` of the fixture `arch` (B off zero): the adapted forward equals the
    /// forward of the naive double merge (f32 forward vs double-merged weights, logits ~5: 2e-5),
    /// and LoRA.merge (f32 GEMM into a scratch, then added) agrees with that merge.
    func assertLoRAEqualsMerge(_ arch: String, targets: [String], expectedAdapters: Int) throws {
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7, 8], [3, 4, 11, 12]], padId: 0)
        let lm = try tinyModel(arch)
        let lora = try LoRA(model: lm, options: LoRAOptions(rank: 3, alpha: 6, targets: targets))
        XCTAssertEqual(lora.adapters.count, expectedAdapters, arch)
        for (i, e) in lora.set.entries.enumerated() where e.name.contains("lora_B") {
            backend.fillNormal(e.tensor, seed: 4, tensorId: UInt32(i), stream: 0, scale: 0.2)
        }
        lm.hook = lora
        let adapted = backend.toHost(try lm.allLogits(batch))
        lm.hook = nil
        naiveMerge(lora, into: lm)
        let merged = backend.toHost(try lm.allLogits(batch))
        XCTAssertLessThan(zip(adapted, merged).map { abs($0 - $1) }.max()!, 2e-5, arch)
        let other = try tinyModel(arch)
        try lora.merge(into: other)
        for name in lora.adapters.keys {
            for (x, y) in zip(backend.toHost(other.weights[name]), backend.toHost(lm.weights[name])) {
                XCTAssertEqual(x, y, accuracy: 2e-7 + 2e-6 * abs(y), "\(arch) \(name)")
            }
        }
    }

    func testInitialisationShapesAndIdentity() throws {
        let lm = try tinyModel()
        let lora = try LoRA(model: lm, options: LoRAOptions(rank: 4, alpha: 8, targets: ["q", "k", "v"]))
        XCTAssertEqual(lora.set.entries.count, 2 * 3 * lm.config.numLayers)
        let kvd = lm.config.numKVHeads * lm.config.headDim, h = lm.config.hiddenSize
        let k = lora.adapters["model.layers.1.self_attn.k_proj.weight"]!
        XCTAssertEqual(k.a.shape, [4, h])
        XCTAssertEqual(k.b.shape, [kvd, 4], "B of k_proj has the GQA output width")
        XCTAssertTrue(lora.set.entries.contains { $0.name == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" })
        for e in lora.set.entries where e.name.contains("lora_A") {
            let v = backend.toHost(e.tensor)
            XCTAssertLessThanOrEqual(v.map(abs).max()!, 1 / Float(h).squareRoot())
            XCTAssertGreaterThan(v.map(abs).max()!, 0.5 / Float(h).squareRoot())
        }
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7], [3, 4]], padId: 0)
        let base = backend.toHost(try lm.allLogits(batch))
        lm.hook = lora
        XCTAssertEqual(backend.toHost(try lm.allLogits(batch)), base, "B = 0: the adapted model is the base")
    }

    func testAdaptedForwardEqualsMergedWeights() throws {
        let lm = try tinyModel()
        let options = LoRAOptions(rank: 4, alpha: 8, targets: ["q", "v", "down"])
        let lora = try LoRA(model: lm, options: options)
        for (i, e) in lora.set.entries.enumerated() where e.name.contains("lora_B") {
            backend.fillNormal(e.tensor, seed: 9, tensorId: UInt32(i), stream: 0, scale: 0.2)
        }
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7, 8], [3, 4, 11]], padId: 0)
        lm.hook = lora
        let adapted = backend.toHost(try lm.allLogits(batch))
        lm.hook = nil
        naiveMerge(lora, into: lm)
        let merged = backend.toHost(try lm.allLogits(batch))
        let worst = zip(adapted, merged).map { abs($0 - $1) }.max()!
        let moved = zip(adapted, try { () -> [Float] in backend.toHost(try tinyModel().allLogits(batch)) }()).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(moved, 1e-3, "the adapters must change the logits")
        XCTAssertLessThan(worst, 2e-5, "adapted vs merged forward (f32 rounding of two GEMM orders)")
    }
}

extension LoRATests {
    // On OPT (biases, out_proj, fc1/fc2) and GPT-2 (Conv1D weights stored (in, out), fused
    // c_attn): the adapted forward equals the merged one, and a Zoop step moves exactly its
    // noisy layers' weights and biases by η each.
    func testOtherArchitectures() throws {
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7, 8], [3, 4, 11, 12]], padId: 0)
        for (arch, targets) in [("opt", ["q", "v", "fc1"]), ("gpt2", ["c_attn", "c_fc"])] {
            try assertLoRAEqualsMerge(arch, targets: targets, expectedAdapters: targets.count * 2)

            let fresh = try tinyModel(arch)
            let before = weights(fresh)
            let zopts = ZoopOptions(eps: 1e-2, layers: targets)
            let z = try Zoop(model: fresh, set: try zopts.trainableSet(fresh), options: zopts)
            _ = try z.step(StepContext(step: 0, runSeed: 1, lr: 0.05, loss: { try languageModelLoss(fresh, batch) },
                                       scoreSamples: { try sequenceScore(fresh, batch) }))
            XCTAssertTrue(z.alpha.allSatisfy(\.isFinite), arch)
            let trained = Set(z.set.entries.map(\.name))
            XCTAssertTrue(trained.contains { $0.hasSuffix(".bias") }, "\(arch): biases of the noisy layers train too")
            for (name, w) in weights(fresh) {
                let d = zip(w, before[name]!).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
                XCTAssertEqual(d, trained.contains(name) ? 0.05 : 0, accuracy: 1e-5, "\(arch) \(name)")
            }
        }
    }
}

extension LoRATests {
    // ZO-FAMILY §5.1: with B = 0 the loss does not depend on A at all (∂L/∂A = 0), so the A part
    // of every early probe is pure noise: moving A alone leaves the logits bit for bit.
    func testWithBZeroTheLossIgnoresA() throws {
        let lm = try tinyModel()
        let lora = try LoRA(model: lm, options: LoRAOptions(rank: 4, alpha: 8))
        lm.hook = lora
        let batch = TokenBatch.leftPadded([[1, 5, 9, 200, 7], [3, 4]], padId: 0)
        let before = backend.toHost(try lm.allLogits(batch))
        for (i, e) in lora.set.entries.enumerated() where e.name.contains("lora_A") {
            backend.perturb(e.tensor, seed: 11, tensorId: UInt32(i), stream: 0, scale: 5)
        }
        XCTAssertEqual(backend.toHost(try lm.allLogits(batch)), before)
        let b = try XCTUnwrap(lora.set.entries.first { $0.name.contains("lora_B") })
        backend.perturb(b.tensor, seed: 1, tensorId: 0, stream: 0, scale: 1e-2)
        XCTAssertNotEqual(backend.toHost(try lm.allLogits(batch)), before, "B ≠ 0: A matters again")
    }
}
