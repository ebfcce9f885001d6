import Foundation
import XCTest
@testable import ZOTuneBackend
@testable import ZOTuneModels

/// The per-shape graph cache around `tokenLogProbs` (ForwardGraphs.swift), on the CPU through the
/// backend's test emulation: a "recorded" graph replays by running the recorded body again, on the
/// inputs then in the graph's buffers. What it checks is the cache's logic (keys, input upload,
/// verification, the off switch); that a real replay equals the eager forward is held on a GPU by
/// check_graph.c and bench/device/run.sh. The reference is always the eager forward of the same
/// model (itself held to transformers by ForwardParityTests), and the comparison is bit for bit:
/// the cache must return exactly what the eager path would.
final class ForwardGraphTests: XCTestCase {
    let backend = KernelBackend.cpu()

    override func setUp() {
        GraphSwitch.resetForTesting()
        KernelBackend.graphEmulation = { body in body }
    }

    override func tearDown() {
        KernelBackend.graphEmulation = nil
        GraphSwitch.resetForTesting()
    }

    func load(dtype: DType = .f32, precision: GemmPrecision = .f32) throws -> CausalLM {
        let dir = ForwardParityTests.fixtures.appendingPathComponent("llama")
        let ckpt = try HFCheckpoint(path: dir.path)
        return try CausalLM(config: ckpt.config, reader: ckpt, backend: backend, dtype: dtype, precision: precision)
    }

    /// A left-padded batch of `b` rows × `t` with ids from `seed`, and next-token targets (−1 at pads).
    func batch(_ b: Int, _ t: Int, seed: Int, vocab: Int) -> (TokenBatch, [Int32]) {
        var ids = [Int32](), mask = [UInt8]()
        for r in 0..<b {
            let pad = (r + seed) % 3
            for i in 0..<t {
                ids.append(i < pad ? 0 : Int32((seed * 31 + r * 7 + i * 13) % vocab))
                mask.append(i < pad ? 0 : 1)
            }
        }
        let targets = (0..<(b * t)).map { i in i % t == t - 1 || mask[i] == 0 ? Int32(-1) : ids[i + 1] }
        return (TokenBatch(ids: ids, mask: mask, batch: b, length: t), targets)
    }

    func eager(_ lm: CausalLM, _ b: TokenBatch, _ targets: [Int32]) throws -> [Float] {
        let saved = KernelBackend.graphEmulation
        KernelBackend.graphEmulation = nil  // recordsGraphs false: the eager path
        defer { KernelBackend.graphEmulation = saved }
        return try lm.tokenLogProbs(b, targets: targets)
    }

    func assertBits(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), what, file: file, line: line)
    }

    // Two shapes recorded, each replayed with new ids and a new padding, and after θ is perturbed
    // in place: every result is the eager forward's, bit for bit.
    func testReplayIsTheEagerForward() throws {
        let lm = try load()
        let v = lm.config.vocabSize
        for (i, (b, t)) in [(2, 6), (3, 4)].enumerated() {
            let (first, targets) = batch(b, t, seed: 1, vocab: v)
            let reference = try eager(lm, first, targets)
            assertBits(try lm.tokenLogProbs(first, targets: targets), reference, "\(b)×\(t): the recording call")
            XCTAssertEqual(lm.forwardGraphs.count, i + 1, "\(b)×\(t) recorded after its verified first replay")
            assertBits(try lm.tokenLogProbs(first, targets: targets), reference, "\(b)×\(t): replayed")
            let (other, otherTargets) = batch(b, t, seed: 5, vocab: v)
            XCTAssertNotEqual(other.mask, first.mask, "a new padding: new positions and key mask")
            assertBits(try lm.tokenLogProbs(other, targets: otherTargets), try eager(lm, other, otherTargets), "\(b)×\(t): new inputs replayed")
        }
        XCTAssertEqual(lm.forwardGraphs.count, 2)
        // Single-token candidates after each row's last position: a shape of its own.
        let (y, _) = batch(3, 4, seed: 1, vocab: v)
        let candidates: [[Int32]] = [[3, 9], [4], [10, 2]]
        func eagerCandidates() throws -> [[Float]] {
            KernelBackend.graphEmulation = nil
            defer { KernelBackend.graphEmulation = { body in body } }
            return try lm.lastTokenLogProbs(y, candidates: candidates)
        }
        let expected = try eagerCandidates()
        assertBits(try lm.lastTokenLogProbs(y, candidates: candidates).flatMap { $0 }, expected.flatMap { $0 }, "candidates: recording call")
        assertBits(try lm.lastTokenLogProbs(y, candidates: candidates).flatMap { $0 }, expected.flatMap { $0 }, "candidates: replayed")
        XCTAssertEqual(lm.forwardGraphs.count, 3)
        let (x, targets) = batch(2, 6, seed: 1, vocab: v)
        let before = try eager(lm, x, targets)
        // ZO's perturbation writes θ in place: a replay reads the perturbed weights.
        var seen = Set<Tensor.StorageKey>()
        for (id, name) in lm.weights.names.enumerated() where seen.insert(lm.weights[name].storageKey).inserted {
            backend.perturb(lm.weights[name], seed: 11, tensorId: UInt32(id), stream: 0, scale: 1e-2)
        }
        let perturbed = try eager(lm, x, targets)
        XCTAssertNotEqual(perturbed, before, "the perturbation changes the log-probs")
        assertBits(try lm.tokenLogProbs(x, targets: targets), perturbed, "replayed after θ was perturbed")
        XCTAssertNil(GraphSwitch.disabled)
    }

    // Mixed precision (bf16 weights, 16-bit GEMM operands): replay = eager; and a forward that
    // grows the mixed-precision workspace (the one buffer a graph writes that the model can
    // reallocate) drops every graph, after which the shape is recorded again.
    func testMixedPrecisionAndWorkspaceGrowth() throws {
        let lm = try load(dtype: .bf16, precision: .mixed)
        let v = lm.config.vocabSize
        let (x, targets) = batch(2, 6, seed: 1, vocab: v)
        let reference = try eager(lm, x, targets)
        assertBits(try lm.tokenLogProbs(x, targets: targets), reference, "recording call")
        assertBits(try lm.tokenLogProbs(x, targets: targets), reference, "replayed")
        XCTAssertEqual(lm.forwardGraphs.count, 1)
        _ = try lm.allLogits(batch(4, 16, seed: 2, vocab: v).0)  // eager, 64 rows: a larger workspace
        XCTAssertEqual(lm.forwardGraphs.count, 0, "the old workspace went back to the allocator")
        assertBits(try lm.tokenLogProbs(x, targets: targets), reference, "recorded again")
        assertBits(try lm.tokenLogProbs(x, targets: targets), reference, "replayed again")
        XCTAssertEqual(lm.forwardGraphs.count, 1)
        XCTAssertNil(GraphSwitch.disabled)
    }

    // A first replay that differs (here: it runs with the embedding table doubled, exact in f32,
    // and halved back) turns graphs off for the process: the eager result is returned, nothing is
    // kept, and later forwards run eagerly.
    func testMismatchTurnsGraphsOff() throws {
        let lm = try load()
        let table = lm.weights[lm.embeddingTableName]
        let be = backend
        KernelBackend.graphEmulation = { body in
            {
                be.scale(table, table, by: 2)
                defer { be.scale(table, table, by: 0.5) }
                try body()
            }
        }
        let (x, targets) = batch(2, 6, seed: 1, vocab: lm.config.vocabSize)
        let got = try lm.tokenLogProbs(x, targets: targets)
        assertBits(got, try eager(lm, x, targets), "the eager result")
        XCTAssertEqual(lm.forwardGraphs.count, 0)
        let reason = try XCTUnwrap(GraphSwitch.disabled)
        XCTAssertTrue(reason.contains("first replay of the 2 × 6 forward differed from the eager forward"), reason)
        XCTAssertFalse(backend.recordsGraphs, "off for the process")
        assertBits(try lm.tokenLogProbs(x, targets: targets), got, "eager from now on")
        XCTAssertEqual(lm.forwardGraphs.count, 0)
    }

    // A graph error turns graphs off too, and the forward still answers eagerly: at a kept
    // shape's replay, and at a new shape's first (verifying) replay.
    func testGraphErrorTurnsGraphsOff() throws {
        let lm = try load()
        var fail = false
        KernelBackend.graphEmulation = { body in
            {
                if fail { throw BackendError("CUDA graph: graph_launch: unspecified launch failure") }
                try body()
            }
        }
        let (x, targets) = batch(2, 6, seed: 1, vocab: lm.config.vocabSize)
        let reference = try eager(lm, x, targets)
        _ = try lm.tokenLogProbs(x, targets: targets)
        XCTAssertEqual(lm.forwardGraphs.count, 1)
        fail = true
        assertBits(try lm.tokenLogProbs(x, targets: targets), reference, "the eager result")
        var reason = try XCTUnwrap(GraphSwitch.disabled)
        XCTAssertTrue(reason.contains("replaying the 2 × 6 forward failed") && reason.contains("unspecified launch failure"), reason)
        XCTAssertEqual(lm.forwardGraphs.count, 0)

        GraphSwitch.resetForTesting()
        let (y, yTargets) = batch(3, 4, seed: 2, vocab: lm.config.vocabSize)
        assertBits(try lm.tokenLogProbs(y, targets: yTargets), try eager(lm, y, yTargets), "the eager result")
        reason = try XCTUnwrap(GraphSwitch.disabled)
        XCTAssertTrue(reason.contains("recording the 3 × 4 forward failed"), reason)
        XCTAssertEqual(lm.forwardGraphs.count, 0)
    }

    // What the key cannot see runs eagerly and records nothing: a forward hook (adapters, prefixes),
    // a KV cache (generation), and any forward other than tokenLogProbs.
    func testHookAndCacheNeverRecord() throws {
        final class Counter: ForwardHook {
            var calls = 0
            func forwardBegins(_ batch: TokenBatch) { calls += 1 }
            func linearDone(_ layer: LinearLayer, input: Tensor, output: Tensor) {}
        }
        let lm = try load()
        let (x, targets) = batch(2, 6, seed: 1, vocab: lm.config.vocabSize)
        let hook = Counter()
        lm.hook = hook
        _ = try lm.tokenLogProbs(x, targets: targets)
        _ = try lm.tokenLogProbs(x, targets: targets)
        XCTAssertEqual(hook.calls, 2, "the hook saw every forward")
        XCTAssertEqual(lm.forwardGraphs.count, 0)
        lm.hook = nil
        let cache = try lm.makeCache(batch: 2, capacity: 8)
        _ = try lm.lastLogits(x, cache: cache)
        _ = try lm.allLogits(x)
        XCTAssertEqual(lm.forwardGraphs.count, 0)
        XCTAssertNil(GraphSwitch.disabled)
    }

    // The small-model rule against its closed form: GPU time per launch, (2·P·n / 2e14 + bytes / 3e12)
    // over 25 launches a layer, at most 5 µs.
    func testLaunchBoundRule() {
        // SmolLM2-135M (30 layers, bf16): 16 × 128 → (2.77 ms + 0.09 ms) / 750 ≈ 3.8 µs.
        XCTAssertTrue(ForwardGraphs.isLaunchBound(parameters: 134_515_008, weightBytes: 269_030_016, layers: 30, tokens: 2048))
        // Llama-2-7B (32 layers, bf16) at 16 tokens: (1.08 ms + 4.49 ms) / 800 ≈ 7.0 µs.
        XCTAssertFalse(ForwardGraphs.isLaunchBound(parameters: 6_738_415_616, weightBytes: 13_476_831_232, layers: 32, tokens: 16))
        // Llama-3.2-1B (16 layers, bf16): 64 tokens → (0.79 ms + 0.82 ms) / 400 ≈ 4.0 µs; 256 tokens → ≈ 10.0 µs.
        XCTAssertTrue(ForwardGraphs.isLaunchBound(parameters: 1_235_814_400, weightBytes: 2_471_628_800, layers: 16, tokens: 64))
        XCTAssertFalse(ForwardGraphs.isLaunchBound(parameters: 1_235_814_400, weightBytes: 2_471_628_800, layers: 16, tokens: 256))
    }
}
