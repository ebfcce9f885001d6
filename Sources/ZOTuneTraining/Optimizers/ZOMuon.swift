import Foundation
import ZOTuneBackend

/// Where ZO-Muon's momentum sits relative to Newton–Schulz.
public enum MomentumPlacement: String, Sendable, Codable, CaseIterable {
    /// The released code: O = NS(g·Z) each step, then SGD momentum on O. Since NS(g·Z) =
    /// sign(g)·NS(Z), the matrices see only the sign of each step's loss difference.
    case afterNS = "after-ns"
    /// A ZOTune variant (Muon's own order): M ← μM + g·Z, then θ −= η·NS(M), so the momentum
    /// keeps the magnitudes of g across steps before orthogonalisation.
    case beforeNS = "before-ns"
}

/// ZO-Muon (intsystems `zo_muon`; ZO-FAMILY.md §4.8). MeZO's two-sided probe gives g; each hidden
/// weight matrix W is then updated with an orthogonalised ZO matrix estimate:
///   after-ns (released):  O = NS(g·Z); buf ← μ·buf + O; W ← W − η·s·buf
///   before-ns (ZOTune):   buf ← μ·buf + g·Z; W ← W − η·s·NS(buf)
/// with s = √max(1, rows/cols) if `tallScale`, else 1 (the released code has no scale). Newton–
/// Schulz is the quintic, 10 iterations, as released. Embeddings, the LM head, biases and norm
/// gains (`isHiddenMatrix` false) take ZO-SGD-MMT on g·z at η·`otherLRRatio`: the released code
/// gives them raw g·z at the matrices' η, orders of magnitude larger than NS's entries ~1/√n
/// (ratio 1 reproduces it). State: one f32 buffer per tensor; NS workspace and batch buffer for one
/// group of same-shaped matrices (NSWorkspace: bounded by a multiple of the largest matrix's).
public struct ZOMuonOptions: Sendable, Equatable, Codable {
    public var eps: Float
    public var momentum: Float
    public var nsSteps: Int
    public var polynomial: NewtonSchulz
    public var placement: MomentumPlacement
    public var otherLRRatio: Float
    public var tallScale: Bool

    public init(eps: Float = 1e-3, momentum: Float = 0.9, nsSteps: Int = 10, polynomial: NewtonSchulz = .quintic,
                placement: MomentumPlacement = .afterNS, otherLRRatio: Float = 0.01, tallScale: Bool = false) {
        self.eps = eps
        self.momentum = momentum
        self.nsSteps = nsSteps
        self.polynomial = polynomial
        self.placement = placement
        self.otherLRRatio = otherLRRatio
        self.tallScale = tallScale
    }

    enum CodingKeys: String, CodingKey {
        case eps, momentum, nsSteps = "ns_steps", polynomial = "ns_polynomial", placement = "momentum_placement"
        case otherLRRatio = "other_lr_ratio", tallScale = "tall_scale"
    }
}

extension ZOMuonOptions: ZOOptimizerOptions {
    public static let spec = OptimizerSpec(
        "zo-muon", "ZO-Muon: Newton–Schulz-orthogonalised ZO matrix steps",
        flags: [.init("--momentum", "momentum", \Self.momentum), .init("--ns-steps", "ns_steps", \Self.nsSteps),
                .init("--ns-polynomial", "ns_polynomial", \Self.polynomial), .init("--other-lr-ratio", "other_lr_ratio", \Self.otherLRRatio),
                .init("--momentum-placement", "momentum_placement", \Self.placement), .init("--tall-scale", "tall_scale", \Self.tallScale)],
        refuses: ["--weight-decay": "the released code has none"],
        defaults: { eps, _ in ZOMuonOptions(eps: eps) }, make: { try ZOMuon(set: $1, options: $0, backend: $2) })

    public func validate() throws {
        try checkUnit(momentum, "momentum", Self.self)
        try checkMatrixOptions(nsSteps: nsSteps, otherLRRatio: otherLRRatio, Self.self)
    }
}

extension OptimizerKind { public static let zoMuon = ZOMuonOptions.spec.kind }
extension OptimizerConfig { public static func zoMuon(_ o: ZOMuonOptions) -> OptimizerConfig { OptimizerConfig(o) } }

public final class ZOMuon: TwoSidedOptimizer, @unchecked Sendable {
    public let set: TrainableSet
    public let options: ZOMuonOptions
    public let backend: any Backend
    /// The SGD buffer of every tensor (f32).
    public let buffers: [Tensor]
    let ns: NSWorkspace

    public init(set: TrainableSet, options: ZOMuonOptions, backend: any Backend) throws {
        try options.validate()
        self.set = set
        self.options = options
        self.backend = backend
        buffers = try set.allocateState(backend)
        ns = try NSWorkspace(entries: set.entries, polynomial: options.polynomial, steps: options.nsSteps, backend: backend)
    }

    /// Probes (2), the fused restore + update, and z regenerated once more per matrix (g·Z for NS
    /// after-ns; before-ns applies NS(buf) in a pass without z). NS itself is not a pass over θ.
    public var passesPerStep: Double { 4 }
    public var matrixFlopsPerStep: Double { NSWorkspace.flops(set.entries.filter(\.isHiddenMatrix), options.polynomial, steps: options.nsSteps) }

    /// Each tensor's update reads only its own weights, buffer and z, so the non-matrix tensors go
    /// first and the hidden matrices group by group (one batched NS per group, NSWorkspace): the
    /// same bits as matrix by matrix in set order.
    public func update(_ r: ZORecord, replay: Bool) {
        var s = updateScalars(eps: options.eps, replay: replay)
        s.g = r.projectedGrad
        s.beta1 = options.momentum
        s.lr = r.lr * options.otherLRRatio
        for (e, buf) in zip(set.entries, buffers) where !e.isHiddenMatrix {
            backend.zoUpdate(.momentum, e.tensor, state1: buf, state2: nil, seed: r.seed, tensorId: e.tensorId, stream: 0, scalars: s)
        }
        for g in ns.groups {
            // Fill: the group's directions into the batch buffer's slots.
            for (k, i) in g.entries.enumerated() {
                let e = set.entries[i], d = ns.slot(k, of: g)
                switch options.placement {
                case .afterNS:
                    backend.fillNormal(d, first: e.tensor.streamIndex, seed: r.seed, tensorId: e.tensorId, stream: 0, scale: r.projectedGrad)
                case .beforeNS:
                    s.lr = 0  // restore θ and advance buf only
                    backend.zoUpdate(.momentum, e.tensor, state1: buffers[i], state2: nil, seed: r.seed, tensorId: e.tensorId, stream: 0, scalars: s)
                    backend.copy(d, from: buffers[i].reshaped(e.tensor.shape))
                }
            }
            ns.orthogonalize(g)
            for (k, i) in g.entries.enumerated() {
                let e = set.entries[i], d = ns.slot(k, of: g)
                let lr = r.lr * (options.tallScale ? e.tallScale : 1)
                switch options.placement {
                case .afterNS:
                    s.lr = lr
                    backend.zoUpdate(.direction, e.tensor, state1: buffers[i], state2: d, seed: r.seed, tensorId: e.tensorId, stream: 0, scalars: s)
                case .beforeNS:
                    backend.addScaled(e.tensor, d, alpha: -lr)
                }
            }
        }
    }
}
