import Foundation
import XCTest
import ZOTuneBackend
@testable import ZOTuneTraining

/// ZO-Muon and Jaguar-Muon orthogonalise same-shaped hidden matrices in one batched NS call per
/// group. The reference here is the per-matrix formulation they replaced, written with the engine's
/// single-matrix calls (fillNormal, newtonSchulz, zoUpdate / jaguarUpdate, addScaled) in set order:
/// the CPU's batched NS is the per-matrix kernel on workspace slices, so the bits must be equal.
final class NSGroupingTests: XCTestCase {
    let backend = KernelBackend.cpu()
    // One 12×10 matrix (the largest), three 3×10 ones (grouped: the CPU budget is 1× the largest's
    // workspace, 614 f32, and 3×10 needs 162 each, so 3 fit), a gain vector between them.
    let names = ["model.layers.0.mlp.up_proj.weight", "model.layers.0.self_attn.k_proj.weight", "model.layers.0.input_layernorm.weight",
                 "model.layers.1.self_attn.k_proj.weight", "model.layers.2.self_attn.k_proj.weight"]
    let shapes = [[12, 10], [3, 10], [10], [3, 10], [3, 10]]

    func makeSet() throws -> TrainableSet {
        let entries = try zip(names, shapes).enumerated().map { i, ns in
            let v = (0..<ns.1.reduce(1, *)).map { Float(cos(Double($0 + 31 * i) * 0.7)) }
            return TrainableSet.Entry(name: ns.0, tensor: try backend.tensor(v, shape: ns.1, tag: .weights),
                                      tensorId: TrainableSet.tensorId(ns.0), decays: true)
        }
        return TrainableSet(entries: entries, spec: "test")
    }

    func host(_ set: TrainableSet) -> [[Float]] { set.entries.map { backend.toHost($0.tensor) } }
    let record = ZORecord(step: 2, direction: 0, seed: 0x9E37_79B9_7F4A_7C15, lr: 0.05, values: [-1.7])

    func testGroupsAreSameShapedAndBounded() throws {
        let set = try makeSet()
        let ns = try NSWorkspace(entries: set.entries, polynomial: .quintic, steps: 5, backend: backend)
        XCTAssertEqual(ns.groups.map(\.entries), [[0], [1, 3, 4]])
        // CPU budget 1×: workspace and buffer those of the largest matrix, as before grouping.
        XCTAssertEqual(ns.workspace.count, newtonSchulzWorkspace(rows: 12, cols: 10))
        XCTAssertEqual(ns.buffer.count, 120)
    }

    func testZOMuonGroupedEqualsPerMatrix() throws {
        for placement in MomentumPlacement.allCases {
            let o = ZOMuonOptions(nsSteps: 5, placement: placement, tallScale: true)
            let grouped = try makeSet(), reference = try makeSet()
            let opt = try ZOMuon(set: grouped, options: o, backend: backend)
            opt.update(record, replay: false)
            let bufs = try reference.allocateState(backend)
            var s = updateScalars(eps: o.eps, replay: false)
            s.g = record.projectedGrad
            s.beta1 = o.momentum
            for (e, buf) in zip(reference.entries, bufs) {
                guard e.isHiddenMatrix else {
                    s.lr = record.lr * o.otherLRRatio
                    backend.zoUpdate(.momentum, e.tensor, state1: buf, state2: nil, seed: record.seed, tensorId: e.tensorId, stream: 0, scalars: s)
                    continue
                }
                let d = try backend.allocate(e.tensor.shape, tag: .workspace)
                let lr = record.lr * e.tallScale
                if placement == .afterNS {
                    backend.fillNormal(d, first: e.tensor.streamIndex, seed: record.seed, tensorId: e.tensorId, stream: 0, scale: record.projectedGrad)
                    try backend.newtonSchulz(d, o.polynomial, steps: o.nsSteps)
                    s.lr = lr
                    backend.zoUpdate(.direction, e.tensor, state1: buf, state2: d, seed: record.seed, tensorId: e.tensorId, stream: 0, scalars: s)
                } else {
                    s.lr = 0
                    backend.zoUpdate(.momentum, e.tensor, state1: buf, state2: nil, seed: record.seed, tensorId: e.tensorId, stream: 0, scalars: s)
                    backend.copy(d, from: buf.reshaped(e.tensor.shape))
                    try backend.newtonSchulz(d, o.polynomial, steps: o.nsSteps)
                    backend.addScaled(e.tensor, d, alpha: -lr)
                }
            }
            XCTAssertEqual(host(grouped), host(reference), "\(placement)")
            XCTAssertEqual(opt.buffers.map { backend.toHost($0) }, bufs.map { backend.toHost($0) }, "\(placement)")
            XCTAssertNotEqual(host(grouped), host(try makeSet()), "the step moved nothing")
        }
    }

    func testJaguarMuonGroupedEqualsPerMatrix() throws {
        let o = JaguarMuonOptions(fraction: 0.5, nsSteps: 5)
        let grouped = try makeSet(), reference = try makeSet()
        let opt = try JaguarMuon(set: grouped, options: o, backend: backend)
        opt.update(record, replay: false)
        let memory = try reference.allocateState(backend)
        var s = jaguarScalars(eps: o.eps, replay: false)
        s.g = record.projectedGrad
        s.beta = o.beta
        s.lr = record.lr * o.otherLRRatio
        for (e, m) in zip(reference.entries, memory) {
            let sel = JaguarSelection(shape: e.tensor.shape, fraction: o.fraction, signs: true)
            guard e.isHiddenMatrix else {
                backend.jaguarUpdate(.sign, e.tensor, state: m, sel, seed: record.seed, tensorId: e.tensorId, scalars: s)
                continue
            }
            backend.jaguarUpdate(.memory, e.tensor, state: m, sel, seed: record.seed, tensorId: e.tensorId, scalars: s)
            let d = try backend.allocate(e.tensor.shape, tag: .workspace)
            backend.newtonSchulz(d, from: m.reshaped(e.tensor.shape), o.polynomial, steps: o.nsSteps,
                                 workspace: try backend.allocate([newtonSchulzWorkspace(rows: e.tensor.shape[0], cols: e.tensor.shape[1])], tag: .workspace),
                                 bf16: false)
            backend.addScaled(e.tensor, d, alpha: -record.lr)
        }
        XCTAssertEqual(host(grouped), host(reference))
        XCTAssertEqual(opt.memory.map { backend.toHost($0) }, memory.map { backend.toHost($0) })
        XCTAssertNotEqual(host(grouped), host(try makeSet()), "the step moved nothing")
    }
}
