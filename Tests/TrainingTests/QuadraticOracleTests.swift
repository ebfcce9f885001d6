import Foundation
import XCTest
import ZOTuneBackend
import ZOTuneKernels
@testable import ZOTuneTraining

/// The quadratic oracle of ZO-FAMILY.md §2: on f(θ) = ½θᵀAθ + bᵀθ the central difference is exact,
/// (f(θ+εz) − f(θ−εz))/2ε = zᵀ(Aθ + b), and so is HiZOO's second difference, so with the
/// directions fixed every optimizer's trajectory has a closed form. `Reference` writes those
/// closed forms naively in double; it is first held to the published values of §4.1–§4.5 with
/// hand-picked directions, then each ZOTune optimizer (kernels, fused passes and all) is held to
/// it with the stream's own z.
final class QuadraticOracleTests: XCTestCase {
    let backend = KernelBackend.cpu()

    /// Diagonal A = diag(a).
    struct Quadratic {
        let a: [Double], b: [Double]
        func f(_ t: [Double]) -> Double { zip(zip(a, b), t).reduce(0) { $0 + 0.5 * $1.0.0 * $1.1 * $1.1 + $1.0.1 * $1.1 } }
        func grad(_ t: [Double]) -> [Double] { (0..<t.count).map { a[$0] * t[$0] + b[$0] } }
    }

    /// The closed forms, one step each (state carried by the caller).
    enum Reference {
        static func dot(_ x: [Double], _ y: [Double]) -> Double { zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } }
        static func sgd(_ q: Quadratic, _ t: inout [Double], z: [Double], lr: Double) -> Double {
            let g = dot(z, q.grad(t))
            for i in t.indices { t[i] -= lr * g * z[i] }
            return g
        }
        static func momentum(_ q: Quadratic, _ t: inout [Double], _ m: inout [Double], z: [Double], lr: Double, mu: Double) {
            let g = dot(z, q.grad(t))
            for i in t.indices { m[i] = mu * m[i] + g * z[i]; t[i] -= lr * m[i] }
        }
        static func adam(_ q: Quadratic, _ t: inout [Double], _ m: inout [Double], _ v: inout [Double], step n: Int, z: [Double], lr: Double,
                         b1: Double = 0.9, b2: Double = 0.999, eps: Double = 1e-8) {
            let g = dot(z, q.grad(t))
            let bc1 = 1 - pow(b1, Double(n)), bc2 = 1 - pow(b2, Double(n))
            for i in t.indices {
                let gi = g * z[i]
                m[i] = b1 * m[i] + (1 - b1) * gi
                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                t[i] -= lr / bc1 * m[i] / (v[i].squareRoot() / bc2.squareRoot() + eps)
            }
        }
        static func sign(_ q: Quadratic, _ t: inout [Double], z: [Double], lr: Double) {
            let g = dot(z, q.grad(t))
            let s: Double = g > 0 ? 1 : g < 0 ? -1 : 0
            for i in t.indices { t[i] -= lr * s * z[i] }
        }
        /// Returns the choice c: θ ← θ + c·Δ… with Δ = η g z, i.e. −1 = θ − Δ.
        static func cons(_ q: Quadratic, _ t: inout [Double], z: [Double], lr: Double) -> Int {
            let g = dot(z, q.grad(t))
            let minus = t.indices.map { t[$0] - lr * g * z[$0] }, plus = t.indices.map { t[$0] + lr * g * z[$0] }
            let c = ZOCons.choice(l0: q.f(t), l1: q.f(minus), l2: q.f(plus))
            t = c == 0 ? t : c < 0 ? minus : plus
            return c
        }
        /// Returns Ĥ (the new estimate before smoothing).
        @discardableResult
        static func hizoo(_ q: Quadratic, _ t: inout [Double], _ h: inout [Double], z: [Double], lr: Double, eps: Double, alpha: Double) -> [Double] {
            let u = t.indices.map { eps * z[$0] / h[$0].squareRoot() }
            let plus = t.indices.map { t[$0] + u[$0] }, minus = t.indices.map { t[$0] - u[$0] }
            let g = (q.f(plus) - q.f(minus)) / (2 * eps)
            let dl = q.f(plus) + q.f(minus) - 2 * q.f(t)
            var hHat = [Double](repeating: 0, count: t.count)
            for i in t.indices {
                hHat[i] = abs(dl) / (2 * eps * eps) * h[i] * z[i] * z[i]
                h[i] = (1 - alpha) * h[i] + alpha * hHat[i]
                t[i] -= lr * g * z[i] / h[i].squareRoot()
            }
            return hHat
        }
    }

    // The reference reproduces ZO-FAMILY.md's closed-form values with its hand-picked directions.
    func testReferenceReproducesThePublishedValues() {
        // §4.1: A = diag(1, 4), θ₀ = (1, 1), z₁ = (1, 0), z₂ = (0, 1), μ 0.9, η 0.1 → θ₂ = (0.81, 0.6).
        let q = Quadratic(a: [1, 4], b: [0, 0])
        var t = [1.0, 1.0], m = [0.0, 0.0]
        Reference.momentum(q, &t, &m, z: [1, 0], lr: 0.1, mu: 0.9)
        XCTAssertEqual(t, [0.9, 1]); XCTAssertEqual(m, [1, 0])
        Reference.momentum(q, &t, &m, z: [0, 1], lr: 0.1, mu: 0.9)
        XCTAssertEqual(t[0], 0.81, accuracy: 1e-15); XCTAssertEqual(t[1], 0.6, accuracy: 1e-15)
        XCTAssertEqual(m[0], 0.9, accuracy: 1e-15); XCTAssertEqual(m[1], 4)
        // §4.5: 1-D h = 4, θ₀ = 1, ε 1e-3, α = 1, z = 2: Δℓ = 16e-6, Ĥ = 32, g = 8, θ₁ = 1 − η·8·2/√32.
        let q1 = Quadratic(a: [4], b: [0])
        var t1 = [1.0], h = [1.0]
        let hHat = Reference.hizoo(q1, &t1, &h, z: [2], lr: 0.01, eps: 1e-3, alpha: 1)
        XCTAssertEqual(hHat[0], 32, accuracy: 1e-6)
        XCTAssertEqual(h[0], 32, accuracy: 1e-6)
        XCTAssertEqual(t1[0], 1 - 0.01 * 8 * 2 / 32.0.squareRoot(), accuracy: 1e-9)
        // §4.3: the step is −η sign(zᵀ∇f) z whatever the scale of f.
        var s1 = [1.0, 1.0], s2 = [1.0, 1.0]
        Reference.sign(q, &s1, z: [0.3, -0.2], lr: 0.1)
        Reference.sign(Quadratic(a: [1e6, 4e6], b: [0, 0]), &s2, z: [0.3, -0.2], lr: 0.1)
        XCTAssertEqual(s1, s2)
    }

    // MARK: ZOTune against the closed forms, with the stream's own z

    let d = 64
    var problem: Quadratic {
        Quadratic(a: (0..<d).map { 0.5 + 3.5 * Double(($0 * 37) % d) / Double(d) }, b: (0..<d).map { 0.3 * sin(Double($0)) })
    }
    var theta0: [Float] { (0..<d).map { Float(cos(Double($0) * 0.7)) } }

    func makeSet() throws -> TrainableSet {
        let t = try backend.tensor(theta0, shape: [d], tag: .weights)
        return TrainableSet(entries: [.init(name: "theta", tensor: t, tensorId: TrainableSet.tensorId("theta"), decays: true)], spec: "test")
    }

    func z(_ t: Int, runSeed: UInt64 = 9) -> [Double] {
        let seed = stepSeed(runSeed: runSeed, step: t, direction: 0)
        return (0..<d).map { Double(zt_normal_at(seed, TrainableSet.tensorId("theta"), 0, UInt64($0))) }
    }

    /// Runs `steps` ZOTune steps of `config` on the quadratic (loss read from θ on the host, in double).
    func runEngine(_ config: OptimizerConfig, steps: Int, lr: Float, scale: Double = 1) throws -> (theta: [Float], records: [ZORecord], optimizer: any ZOOptimizer) {
        let set = try makeSet()
        let q = problem
        let opt = try config.make(set: set, backend: backend)
        var records: [ZORecord] = []
        for t in 0..<steps {
            records += try opt.step(StepContext(step: t, runSeed: 9, lr: lr, loss: { [self] in scale * q.f(backend.toHost(set.entries[0].tensor).map(Double.init)) })).records
        }
        return (backend.toHost(set.entries[0].tensor), records, opt)
    }

    /// |engine − reference| ≤ tol·(1 + |reference|) element-wise. The engine's g comes from f32
    /// θ ± εz (rounded once each: ~6e-8·|θ|), so each g carries ~1e-6 relative error at ε = 1e-2,
    /// which the trajectory carries forward; 20 steps stay well inside 2e-4.
    func assertClose(_ engine: [Float], _ reference: [Double], tol: Double = 2e-4, _ what: String) {
        for i in reference.indices {
            XCTAssertEqual(Double(engine[i]), reference[i], accuracy: tol * (1 + abs(reference[i])), "\(what)[\(i)]")
        }
    }

    func testEveryOptimizerFollowsItsClosedForm() throws {
        let q = problem, steps = 20, eps: Float = 1e-2
        // MeZO (ZO-SGD)
        do {
            let e = try runEngine(.mezo(MeZOOptions(eps: eps)), steps: steps, lr: 0.02)
            var t = theta0.map(Double.init)
            for s in 0..<steps { _ = Reference.sgd(q, &t, z: z(s), lr: 0.02) }
            assertClose(e.theta, t, "mezo")
        }
        // ZO-SGD-MMT
        do {
            let e = try runEngine(.zoSGDMomentum(ZOMomentumOptions(eps: eps, momentum: 0.9)), steps: steps, lr: 0.005)
            var t = theta0.map(Double.init), m = [Double](repeating: 0, count: d)
            for s in 0..<steps { Reference.momentum(q, &t, &m, z: z(s), lr: 0.005, mu: 0.9) }
            assertClose(e.theta, t, "zo-sgd-mmt")
            assertClose(backend.toHost((e.optimizer as! ZOMomentum).momentum[0]), m, tol: 1e-3, "zo-sgd-mmt m")
        }
        // ZO-Adam
        do {
            let e = try runEngine(.zoAdam(ZOAdamOptions(eps: eps)), steps: steps, lr: 0.01)
            var t = theta0.map(Double.init), m = [Double](repeating: 0, count: d), v = m
            for s in 0..<steps { Reference.adam(q, &t, &m, &v, step: s + 1, z: z(s), lr: 0.01) }
            assertClose(e.theta, t, "zo-adam")
        }
        // ZO-SGD-Sign
        do {
            let e = try runEngine(.zoSign(ZOSignOptions(eps: eps)), steps: steps, lr: 0.01)
            var t = theta0.map(Double.init)
            for s in 0..<steps { Reference.sign(q, &t, z: z(s), lr: 0.01) }
            assertClose(e.theta, t, "zo-sign")
        }
        // ZO-SGD-Cons: the same choices, the same trajectory.
        do {
            let e = try runEngine(.zoCons(ZOConsOptions(eps: eps)), steps: steps, lr: 0.015)
            var t = theta0.map(Double.init)
            var choices: [Int] = []
            for s in 0..<steps { choices.append(Reference.cons(q, &t, z: z(s), lr: 0.015)) }
            XCTAssertEqual(e.records.map { Int($0.values[1]) }, choices)
            XCTAssertTrue(Set(choices).count > 1, "the test should see more than one kind of move: \(choices)")
            assertClose(e.theta, t, "zo-cons")
        }
        // HiZOO with a large α so H moves: θ and H both follow the closed form.
        do {
            let alpha = 0.3
            let e = try runEngine(.hizoo(HiZOOOptions(eps: eps, hessianSmoothing: Float(alpha))), steps: steps, lr: 0.02)
            var t = theta0.map(Double.init), h = [Double](repeating: 1, count: d)
            for s in 0..<steps { Reference.hizoo(q, &t, &h, z: z(s), lr: 0.02, eps: Double(eps), alpha: alpha) }
            assertClose(e.theta, t, tol: 1e-3, "hizoo")
            // Δℓ is a difference of nearly equal losses (~ε²·Σa z²/H ≈ 1e-2 next to f ≈ 20) rounded
            // in f32 storage, so H carries ~1e-4 relative error per step.
            assertClose(backend.toHost((e.optimizer as! HiZOO).hessian[0]), h, tol: 2e-2, "hizoo H")
        }
    }

    // Sign: multiplying the loss by 10⁶ changes g by 10⁶ and nothing else: bit-identical weights.
    func testSignIsScaleInvariant() throws {
        let a = try runEngine(.zoSign(ZOSignOptions(eps: 1e-2)), steps: 10, lr: 0.01)
        let b = try runEngine(.zoSign(ZOSignOptions(eps: 1e-2)), steps: 10, lr: 0.01, scale: 1e6)
        XCTAssertEqual(a.theta, b.theta)
        for (x, y) in zip(a.records, b.records) { XCTAssertEqual(Double(y.projectedGrad / x.projectedGrad), 1e6, accuracy: 1e3) }
    }

    // Adam's first step moves every coordinate by η (m̂/√v̂ = sign(ĝ)), up to ε_adam/|ĝ| and the
    // rounding of the probe moves (~1e-7·|θ|/η).
    func testAdamFirstStepMovesEveryCoordinateByEta() throws {
        let e = try runEngine(.zoAdam(ZOAdamOptions(eps: 1e-2)), steps: 1, lr: 0.01)
        for (x, x0) in zip(e.theta, theta0) { XCTAssertEqual(abs(Double(x) - Double(x0)), 0.01, accuracy: 2e-5) }
    }

    // Cons on every ordering of (ℓ₀, ℓ₁, ℓ₂), ties included, against ZO-Bench's branch table
    // (ZO-FAMILY.md §4.4): ties go to θ + Δ, then θ − Δ.
    func testConsChoiceOnEveryOrdering() {
        let table: [((Double, Double, Double), Int)] = [
            ((1, 2, 3), 0), ((1, 3, 2), 0), ((2, 1, 3), -1), ((3, 1, 2), -1), ((2, 3, 1), 1), ((3, 2, 1), 1),
            ((1, 1, 1), 1), ((1, 1, 2), -1), ((1, 2, 1), 1), ((2, 1, 1), 1), ((1, 2, 2), 0), ((2, 2, 1), 1), ((2, 1, 2), -1),
        ]
        for ((l0, l1, l2), want) in table {
            XCTAssertEqual(ZOCons.choice(l0: l0, l1: l1, l2: l2), want, "ℓ = (\(l0), \(l1), \(l2))")
            let best = min(l0, l1, l2)
            let picked = want == 0 ? l0 : want < 0 ? l1 : l2
            XCTAssertEqual(picked, best, "the choice is always a minimiser")
        }
    }

    // With η 100× too large ZO-SGD diverges on the fixed quadratic; Cons never increases the loss.
    func testConsIsMonotoneWhereSGDDiverges() throws {
        let q = problem
        let lr: Float = 2   // stable ZO-SGD needs η ≲ 1/(d·max a) ≈ 0.004
        let sgd = try runEngine(.mezo(MeZOOptions(eps: 1e-2)), steps: 15, lr: lr)
        XCTAssertGreaterThan(q.f(sgd.theta.map(Double.init)), 100 * q.f(theta0.map(Double.init)))
        let set = try makeSet()
        let cons = try ZOCons(set: set, options: ZOConsOptions(eps: 1e-2), backend: backend).self
        var last = q.f(theta0.map(Double.init))
        for t in 0..<15 {
            _ = try cons.step(StepContext(step: t, runSeed: 9, lr: lr, loss: { [self] in q.f(backend.toHost(set.entries[0].tensor).map(Double.init)) }))
            let now = q.f(backend.toHost(set.entries[0].tensor).map(Double.init))
            XCTAssertLessThanOrEqual(now, last * (1 + 1e-6), "step \(t)")
            last = now
        }
    }

    // HiZOO on the 1-D quadratic h = 4: Ĥ = h z⁴/2 so E[H] → (3/2)h = 6 (ZO-FAMILY.md §4.5, the
    // estimator's bias); 20 000 steps with α = 1e-2 put the time average within ±3% (2σ).
    func testHiZOOHessianConvergesToItsBiasedFixedPoint() throws {
        let t = try backend.tensor([Float(1)], shape: [1], tag: .weights)
        let set = TrainableSet(entries: [.init(name: "x", tensor: t, tensorId: TrainableSet.tensorId("x"), decays: false)], spec: "test")
        let opt = try HiZOO(set: set, options: HiZOOOptions(eps: 1e-2, hessianSmoothing: 1e-2), backend: backend)
        var sum = 0.0
        let n = 20_000
        for s in 0..<n {
            // lr 0 keeps θ at 1 (the estimate does not depend on θ on a quadratic).
            _ = try opt.step(StepContext(step: s, runSeed: 3, lr: 0, loss: { [self] in let x = Double(backend.toHost(t)[0]); return 2 * x * x }))
            if s >= 2_000 { sum += Double(backend.toHost(opt.hessian[0])[0]) }
        }
        XCTAssertEqual(sum / Double(n - 2_000), 6, accuracy: 0.6)
    }
}
