import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneModels
@testable import ZOTuneTraining

/// DiZO (ZO-FAMILY.md §4.9): with searches off it is ZO-SGD bit for bit; on the toy
/// L(θ⁰ + rΔ) = Σ_ℓ (r_ℓ − r*_ℓ)² with r* = (1.5, 0.9) the ratios stay in [1 − τ, 1 + τ] and move
/// toward r*; probes never drift; a NaN in a search leaves θ where the search started.
final class DiZOTests: XCTestCase, TinyFixture {
    let backend = KernelBackend.cpu()
    let names = ["toy.a.weight", "toy.b.weight"]
    let target = [1.5, 0.9]

    /// Two projected tensors at θ⁰ + Δ (‖Δ‖ = 0.05 and 0.02, typical distances after a few hundred
    /// steps), the DiZO over them (θ⁰ captured at construction), and the toy loss of the ratios.
    func toy(_ options: DiZOOptions) throws -> (DiZO, TrainableSet, loss: (Int) throws -> Double, base: [[Float]], delta: [[Float]]) {
        let shapes = [[4, 5], [3]]
        let base = shapes.enumerated().map { k, s in (0..<s.reduce(1, *)).map { Float(sin(Double($0 * 7 + k) * 0.9)) } }
        let delta = shapes.enumerated().map { k, s -> [Float] in
            let d = (0..<s.reduce(1, *)).map { Float(cos(Double($0 * 3 + 5 * k) * 1.7)) }
            let n = d.reduce(0) { $0 + Double($1 * $1) }.squareRoot()
            return d.map { $0 * Float((k == 0 ? 0.05 : 0.02) / n) }
        }
        let tensors = try zip(shapes, base).map { try backend.tensor($1, shape: $0, tag: .weights) }
        let set = TrainableSet(entries: zip(names, tensors).map { .init(name: $0, tensor: $1, tensorId: TrainableSet.tensorId($0), decays: true) },
                               spec: "toy")
        let dizo = try DiZO(set: set, options: options, backend: backend)
        for (t, (b, d)) in zip(tensors, zip(base, delta)) {
            try zip(b, d).map { $0 + $1 }.withUnsafeBytes { backend.copy(t, fromHost: $0) }
        }
        let loss: (Int) throws -> Double = { _ in
            zip(self.ratios(set, base, delta), self.target).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        }
        return (dizo, set, loss, base, delta)
    }

    /// r_ℓ = ⟨θ_ℓ − θ⁰_ℓ, Δ_ℓ⟩ / ‖Δ_ℓ‖² in double.
    func ratios(_ set: TrainableSet, _ base: [[Float]], _ delta: [[Float]]) -> [Double] {
        set.entries.indices.map { k in
            let x = backend.toHost(set.entries[k].tensor)
            var num = 0.0, den = 0.0
            for i in x.indices {
                num += (Double(x[i]) - Double(base[k][i])) * Double(delta[k][i])
                den += Double(delta[k][i]) * Double(delta[k][i])
            }
            return num / den
        }
    }

    // One search of 10 iterations from r = 1, over 100 run seeds: every ratio stays in
    // [0.8, 1.2]; with 60 iterations r₁ (target 1.5) sits at the clip 1.2 and r₂ (target 0.9)
    // ends below 1, nearer 0.9.
    func testToySearchStaysInTheClipRangeAndMovesTowardTheTarget() throws {
        var endFar: [[Double]] = []
        for seed in 0..<100 {
            for iterations in [10, 60] {
                let (dizo, set, loss, base, delta) = try toy(DiZOOptions(interval: 1, iterations: iterations, layers: names))
                let r = try dizo.search(number: 0, runSeed: UInt64(seed), loss: loss)
                let measured = ratios(set, base, delta)
                for k in 0..<2 {
                    XCTAssertGreaterThanOrEqual(r[k], 0.8 - 1e-6)
                    XCTAssertLessThanOrEqual(r[k], 1.2 + 1e-6)
                    XCTAssertEqual(measured[k], Double(r[k]), accuracy: 1e-5, "θ is θ⁰ + rΔ after the search")
                }
                if iterations == 60 { endFar.append(measured) }
            }
        }
        let mean = (0..<2).map { k in endFar.reduce(0) { $0 + $1[k] } / Double(endFar.count) }
        XCTAssertGreaterThan(mean[0], 1.19, "r₁ should sit at the clip 1.2")
        XCTAssertLessThan(mean[1], 0.97, "r₂ should move from 1 toward 0.9")
        XCTAssertLessThan(abs(mean[1] - 0.9), abs(1 - 0.9))
    }

    // E[Δr_ℓ] has the sign of r*_ℓ − r_ℓ: one iteration from r = 1, averaged over 400 seeds,
    // r₁ rises and r₂ falls, each by more than four standard errors.
    func testExpectedRatioStepPointsToTheTarget() throws {
        var steps: [[Double]] = []
        for seed in 0..<400 {
            let (dizo, _, loss, _, _) = try toy(DiZOOptions(interval: 1, iterations: 1, layers: names))
            steps.append(try dizo.search(number: 0, runSeed: UInt64(seed) &* 7919, loss: loss).map { Double($0) - 1 })
        }
        for (k, sign) in [(0, 1.0), (1, -1.0)] {
            let v = steps.map { $0[k] }
            let mean = v.reduce(0, +) / Double(v.count)
            let se = (v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count - 1) / Double(v.count)).squareRoot()
            XCTAssertGreaterThan(sign * mean, 4 * se, "ratio \(k): mean step \(mean) ± \(se)")
        }
    }

    // Probes are computed from the shadows, never by multiplying and dividing θ in place: apply
    // (any α) then reverse (α = 1) is the identity within 2 ulp, and after a whole search with a
    // flat loss (20 probes, ĝ = 0) θ is θ⁰ + r(θ_start − θ⁰) for the returned r, computed once in
    // double, within 1 ulp: the probes left no trace. A NaN in a search restores its start bit for bit.
    func testProbesDoNotDriftAndNaNRestoresTheStart() throws {
        let (dizo, set, _, base, _) = try toy(DiZOOptions(interval: 1, iterations: 10, layers: names))
        func ulps(_ a: [Float], _ b: [Float]) -> Int64 { zip(a, b).map { abs(Int64($0.bitPattern) - Int64($1.bitPattern)) }.max()! }
        let start = set.entries.map { backend.toHost($0.tensor) }
        for (k, e) in set.entries.enumerated() { backend.copy(dizo.start[k], from: e.tensor) }
        for alpha: Float in [0.8, 0.93, 1.2, 1.0 / 3] {
            dizo.apply([alpha, alpha])
            XCTAssertGreaterThan(ulps(backend.toHost(set.entries[0].tensor), start[0]), 100)
            dizo.apply([1, 1])
            for k in 0..<2 { XCTAssertLessThanOrEqual(ulps(backend.toHost(set.entries[k].tensor), start[k]), 2, "α = \(alpha)") }
        }
        for (k, e) in set.entries.enumerated() { backend.copy(e.tensor, from: dizo.start[k]) }
        let r = try dizo.search(number: 0, runSeed: 3) { _ in 1.0 }
        for k in 0..<2 {
            let want = zip(base[k], start[k]).map { Float(Double($0) + Double(r[k]) * (Double($1) - Double($0))) }
            XCTAssertLessThanOrEqual(ulps(backend.toHost(set.entries[k].tensor), want), 1)
        }
        let now = set.entries.map { backend.toHost($0.tensor) }
        var calls = 0
        XCTAssertThrowsError(try dizo.search(number: 1, runSeed: 3) { _ in calls += 1; return calls == 3 ? .nan : 1 }) {
            XCTAssertTrue($0 is NonFiniteLoss, "\($0)")
        }
        XCTAssertEqual(set.entries.map { backend.toHost($0.tensor) }, now)
    }

    // With --dizo-interval 0 a run is ZO-SGD's (mezo with the same ε and λ) bit for bit: records and weights.
    func testSearchesDisabledIsZOSGD() throws {
        let run = RunOptions(task: "tiny", steps: 6, batchSize: 4, lr: 1e-3, schedule: .linear, evalEvery: 3, seed: 7, dataSeed: 3,
                             saveEvery: 2, keepBest: false)
        var results: [([Float], [String: [Float]])] = []
        for config in [OptimizerConfig.mezo(MeZOOptions(eps: 1e-2, weightDecay: 0.01)),
                       .dizo(DiZOOptions(eps: 1e-2, weightDecay: 0.01, interval: 0))] {
            let lm = try tinyModel(), dir = tempDir()
            let t = try Trainer(model: lm, tokenizer: try tokenizer(), splits: tinySplits(), options: run,
                                optimizer: try config.make(model: lm), runDir: dir, base: BaseCheckpoint(path: "tiny", hash: "test", format: "hf", dtype: "f32"))
            _ = try t.run()
            let traj = try TrajectoryFile.read(t.trajectoryURL)
            results.append((traj.records.map(\.projectedGrad), weights(lm)))
        }
        XCTAssertEqual(results[0].0, results[1].0)
        XCTAssertTrue(results[0].1 == results[1].1, "dizo without searches differs from mezo")
    }

    // The projected set follows --dizo-layers: k and v by default (the released code), q/k/v/o
    // names on Llama, none of the MLP; an option that matches nothing is an error.
    func testProjectedTensorsByName() throws {
        let lm = try tinyModel()
        let dizo = try DiZO(set: .full(lm), options: DiZOOptions(), backend: backend)
        XCTAssertEqual(dizo.projected.map(\.name), (0..<2).flatMap { ["model.layers.\($0).self_attn.k_proj.weight", "model.layers.\($0).self_attn.v_proj.weight"] })
        XCTAssertEqual(dizo.stateBytes, 2 * dizo.projected.reduce(0) { $0 + $1.tensor.bytes })
        XCTAssertEqual(try DiZO(set: .full(lm), options: DiZOOptions(layers: ["q", "o"]), backend: backend).projected.count, 4)
        XCTAssertThrowsError(try DiZO(set: .full(lm), options: DiZOOptions(layers: ["fc1"]), backend: backend))
    }
}
